module locks

go 1.20
