module cpusplit

go 1.19
