package main

// Section 6's "before": what the same harness measured on maptrace
// beforeCommit, before the report was reworked, kept here because that
// code is gone once it is. One run (go run ./bench -only 6) on the
// project's 2-vCPU VM, busy with other work at the time. Two more runs
// gave nats-server 14-15 findings and 293-322 lines; etcd 365-655
// findings, 48k-166k lost events, 3061-5085 lines; Caddy 323-702
// findings, 158k-339k lost events, 2681-5612 lines; every one of them a
// shared-writer warning, 4096 maps for etcd and Caddy.
const beforeCommit = "d013cbe"

// beforeFigures are one server's report figures before the rework.
type beforeFigures struct {
	Findings, Critical, Warnings, Info int
	First                              string
	Lost                               uint64
	TextLines, Maps, Mutexes           int
	SharedWriter, BottleneckFirst      bool
}

var realBefore = map[string]beforeFigures{
	"nats-server": {
		Findings: 15, Critical: 0, Warnings: 5, Info: 10,
		First:     "mutex 0x2aad2254964c (locked in server.(*client).deliverMsg): writers wait for readers (writer p99 10.37ms, reader p99 0ns)",
		Lost:      0,
		TextLines: 302, Maps: 28, Mutexes: 7,
		SharedWriter: true, BottleneckFirst: true,
	},
	"etcd": {
		Findings: 655, Critical: 0, Warnings: 342, Info: 313,
		First:     "mutex 0x3b36ef18bd10 (locked in backend.(*readTx).RLock): readers waited 2.78s for RLock (32% of the 8.7s window)",
		Lost:      48154,
		TextLines: 5085, Maps: 4096, Mutexes: 37,
		SharedWriter: true, BottleneckFirst: true,
	},
	"caddy": {
		Findings: 323, Critical: 0, Warnings: 316, Info: 7,
		First:     "mutex 0x21ababec9380 (locked in http.(*Transport).tryPutIdleConn): goroutines waited 2.13s for it (25% of the 8.6s window)",
		Lost:      166377,
		TextLines: 2681, Maps: 4096, Mutexes: 7,
		SharedWriter: true, BottleneckFirst: true,
	},
}

// coldBuilds are the servers' first builds on the project's VM (nothing
// cached for them yet), for a reader without the cached binaries.
const coldBuilds = "etcd 1 min, Caddy 3.5 min, CoreDNS 4 min, nats-server under 3 min (with the standard library not cached either); later runs reuse the binaries"
