module maptarget

go 1.19
