module shardedtarget

go 1.19

require github.com/orcaman/concurrent-map/v2 v2.0.1
