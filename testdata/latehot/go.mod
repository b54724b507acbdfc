module latehot

go 1.19
