module plain
go 1.19
