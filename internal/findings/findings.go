// Package findings turns a report's measurements into ranked conclusions:
// what is wrong or worth knowing, the numbers that show it, and a concrete
// fix chosen from what was measured.
package findings

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/maptrace/maptrace/internal/report"
)

// Thresholds. They are deliberately simple, so that a finding can say in
// one line why it was raised.
const (
	// A finding that costs less than thresholdShare of the window's
	// goroutine time (the window times the CPUs the target may use, for
	// lock waits) or of the target's CPU time (for map work) is below
	// threshold: kept in the JSON report, left out of the text one.
	thresholdShare = 0.01
	// Costs under minorShare of the same are not findings at all.
	minorShare = 0.001
	// The JSON report keeps at most this many findings below threshold.
	maxBelow = 30

	// A mutex has long waits when its p99 wait exceeds longWaitP99 over at
	// least minWaitsForP99 waits, or its waits add up to longWaitShare of
	// the window.
	longWaitShare  = 0.10
	longWaitP99    = 10_000_000 // 10ms
	minWaitsForP99 = 3

	// A map is read-mostly when reads (and iterations) are at least
	// readMostlyRatio times its writes (and deletes).
	readMostlyRatio = 10
	// A map is write-hot when writes and deletes are at least this share of
	// its operations.
	writeHotShare = 0.25
	// A contended mutex guards a map when at least this share of the
	// map's operations are in the functions that wait for it.
	guardedShare = 0.25

	// asGoodAsExact is the share of the time (or work) probed from which
	// counts scaled up by it are worth no finding: they move by under 1%.
	asGoodAsExact = 0.99

	// A key is hot when it takes hotKeyShare of the map's keyed operations,
	// out of at least hotKeyMinOps.
	hotKeyShare  = 0.30
	hotKeyMinOps = 100

	// RWMutex writers starve when their p99 wait is starveFactor times the
	// readers' and long in itself (longWaitP99), or their waits add up to
	// longWaitShare of the window.
	starveFactor = 4

	// A class of at least manyMaps maps in one window is maps made and
	// dropped, not a few long-lived ones.
	manyMaps = 100

	// manyWaiters goroutines waiting for one lock is worth saying.
	manyWaiters = 8

	// A sync.Map's mix is judged over at least syncMapMinOps operations.
	// Its keys keep changing — what it handles worst — when misses (a key
	// found only in the dirty map, up to Go 1.23) are churnMissShare of its
	// loads, when promotions (each a whole-map copy to come) are at least
	// churnPromotions and 1 per churnPromotionOps operations, or when
	// deletes are churnDeleteShare of its operations.
	syncMapMinOps     = 1000
	churnMissShare    = 0.10
	churnPromotions   = 10
	churnPromotionOps = 1000
	churnDeleteShare  = 0.10

	// Copy-on-write snapshots cost more than a lock when at least
	// minSnapshots of them copied at least as many entries as they were
	// read: an uncontended RLock costs less than copying an entry.
	minSnapshots = 10

	// A sharded map is imbalanced when its busiest shard has shardImbalance
	// times the mean shard's operations.
	shardImbalance = 2
)

// Analyze returns r's findings in the order an on-call engineer should read
// them: what breaks correctness first (the target died, a map was raced,
// a map written by goroutines in turn with no lock seen), then what costs
// time, most first — goroutine-time blocked on a mutex, CPU time in map
// operations. Each carries its cost over the window; those under 1% of the
// window are marked below threshold and come last.
func Analyze(r *report.Report) []report.Finding {
	if r == nil {
		return nil
	}
	a := &analysis{r: r, raced: map[string]bool{}, contended: map[string]*report.Mutex{}, judged: map[string]bool{}}
	for _, rc := range r.Races {
		a.raced[rc.MapID] = true
	}
	cpus := float64(max(r.Target.CPUs, 1))
	a.waitBase = r.Window.Seconds * cpus
	a.cpuBase = r.CPU.Seconds
	if a.cpuBase <= 0 {
		a.cpuBase = r.Window.Seconds * cpus
	}
	a.targetDied()
	a.races()
	a.mutexes()
	a.interleaved()
	a.shardBalance()
	a.snapshots()
	a.syncMapFit()
	a.mapCPU()
	a.hotKeys()
	a.sampling()
	a.overBudget()
	return a.ranked()
}

// Classes of finding, in the order they rank: correctness first, whatever
// it costs; then what costs time, by cost; what may be wrong, not seen to
// be; what is about the trace itself; and what the report's header says
// already (JSON only).
const (
	correctness = report.ClassCorrectness
	cost        = report.ClassCost
	risk        = report.ClassRisk
	tracing     = report.ClassTracing
	note        = report.ClassNote
)

var classRank = map[string]int{correctness: 0, cost: 1, risk: 2, tracing: 3, note: 4}

type finding struct {
	report.Finding
	base float64 // the seconds its cost is a share of
}

// ranked orders the findings and marks those below threshold.
func (a *analysis) ranked() []report.Finding {
	for i := range a.out {
		f := &a.out[i]
		f.BelowThreshold = f.Class == note || f.Class == cost && (f.base <= 0 || f.CostSeconds < thresholdShare*f.base)
	}
	sort.SliceStable(a.out, func(i, j int) bool {
		x, y := a.out[i], a.out[j]
		if x.BelowThreshold != y.BelowThreshold {
			return !x.BelowThreshold
		}
		if x.Class != y.Class {
			return classRank[x.Class] < classRank[y.Class]
		}
		if x.Class == correctness {
			return rank(x.Severity) < rank(y.Severity)
		}
		return x.CostSeconds > y.CostSeconds
	})
	out := make([]report.Finding, 0, len(a.out))
	below := 0
	for _, f := range a.out {
		if f.BelowThreshold {
			if below == maxBelow {
				continue
			}
			below++
		}
		out = append(out, f.Finding)
	}
	return out
}

func rank(severity string) int {
	switch severity {
	case report.SeverityCritical:
		return 0
	case report.SeverityWarning:
		return 1
	}
	return 2
}

type analysis struct {
	r     *report.Report
	out   []finding
	raced map[string]bool // map row IDs with a race
	// contended maps a map row ID to the long-waited mutex whose waiters
	// are the functions that use the map.
	contended map[string]*report.Mutex
	// groups are the mutexes, those of one kind locked in one place (a
	// field of many objects) merged into one.
	groups []report.Mutex
	// waitBase is the window's goroutine time that lock waits are a share
	// of; cpuBase the target's CPU time that map work is a share of.
	waitBase, cpuBase float64
	// judged are the map rows that have their finding already: a row has
	// at most one.
	judged map[string]bool
}

func (a *analysis) add(class, severity, title, detail, advice string, costSeconds, base float64) {
	a.out = append(a.out, finding{
		Finding: report.Finding{Severity: severity, Class: class, Title: title, Detail: detail, Advice: advice, CostSeconds: costSeconds},
		base:    base,
	})
}

func (a *analysis) targetDied() {
	msg := a.r.TargetError
	if msg == "" {
		return
	}
	detail := fmt.Sprintf("the process exited with \"%s\"", a.r.DiedOf())
	if at := a.r.DiedAt(); at != "" {
		detail += " in " + at
	}
	detail += fmt.Sprintf(", %.1fs into the trace; the report covers the time until then.", a.r.Window.Seconds)
	advice := "read the goroutine dump the runtime printed on the target's stderr: the goroutine that died (every goroutine if it ran with GOTRACEBACK=all)."
	switch {
	case a.r.TargetCrash != "panic" && strings.HasPrefix(msg, "concurrent map"):
		detail += " Go maps are not safe for concurrent use: a write at the same time as any other access is fatal."
		advice = "make every access to the map hold the same lock (see the race finding for the map and its two call sites); " +
			"`go test -race` finds the other unguarded accesses."
		if !a.raceOfKind(report.FatalRaceKind(msg)) {
			// The map probes were off when it raced: nothing names the map.
			advice = "make every access to the map it died on hold the same lock; the probes, attached for part of the trace, " +
				"saw neither side of the race, and the runtime's dump shows only the goroutine that died: `go test -race` finds the other unguarded accesses."
		}
	case a.r.TargetCrash == "panic" && len(a.r.Races) > 0:
		// A race can break a map before the runtime's check catches it:
		// the panic is then the race's, wherever it lands.
		in := topFunc(a.r.TargetStack)
		if rc := a.raceIn(in); rc != nil {
			detail += fmt.Sprintf(" %s was one side of the %s race on %s: a map used by two goroutines at once can hand out a broken entry before the runtime notices the race.",
				in, rc.Kind, raceMapLabel(*rc, a.mapByID(rc.MapID)))
			advice = "fix the race first (see its finding): make every access to the map hold the same lock; " +
				"`go test -race` finds the other unguarded accesses."
		} else {
			detail += " The trace also saw a map race (below): a map used by two goroutines at once can corrupt memory that other code then trips on."
		}
	}
	a.add(correctness, report.SeverityCritical, "target died: "+a.r.DiedOf(), detail, advice, 0, 0)
}

// raceOfKind reports whether the trace saw a race of the kind given.
func (a *analysis) raceOfKind(kind string) bool {
	for _, rc := range a.r.Races {
		if rc.Kind == kind {
			return true
		}
	}
	return false
}

// raceIn is a race one of whose sides was in the function fn, or nil.
func (a *analysis) raceIn(fn string) *report.Race {
	if fn == "" {
		return nil
	}
	for i, rc := range a.r.Races {
		for _, sd := range rc.Sides {
			if topFunc(sd.Stack) == fn {
				return &a.r.Races[i]
			}
		}
	}
	return nil
}

// races: one critical finding per raced map and kind.
func (a *analysis) races() {
	for _, rc := range a.r.Races {
		m := a.mapByID(rc.MapID)
		label := raceMapLabel(rc, m)
		var sides []string
		for _, s := range rc.Sides {
			sides = append(sides, sideText(s))
		}
		if len(sides) == 0 {
			sides = []string{"two goroutines"}
		}
		detail := fmt.Sprintf("%s used it at the same time (%s, seen %s)", strings.Join(sides, " and "), rc.Kind, report.Times(rc.Count))
		if a.r.TargetCrash != "panic" && report.FatalRaceKind(a.r.TargetError) == rc.Kind {
			detail += "; the runtime killed the process for it"
		} else {
			detail += "; the runtime kills the process when it catches this (\"fatal error: concurrent map ...\")"
		}
		if m != nil {
			detail += fmt.Sprintf(". The map had %d reads, %d writes, %d deletes, %d iterations from %d goroutines",
				m.Reads, m.Writes, m.Deletes, m.Iterations, m.Goroutines)
		}
		a.add(correctness, report.SeverityCritical, fmt.Sprintf("concurrent map access (%s) on %s", rc.Kind, label), detail+".", raceAdvice(m), 0, 0)
	}
}

func sideText(s report.RaceSide) string {
	if s.Goid == 0 && len(s.Stack) == 0 {
		return fmt.Sprintf("a %s not seen (the map probes were off)", s.Op)
	}
	at := report.ShortFrame(topUser(s.Stack))
	if at == "" {
		at = "an unrecorded stack"
	}
	return fmt.Sprintf("goroutine %d (%s at %s)", s.Goid, s.Op, at)
}

// raceAdvice chooses the guard from how the map was used.
func raceAdvice(m *report.Map) string {
	const alternatives = "sync.Map fits keys written once and read many times; a sharded map (N maps, each with its own mutex, picked by key hash) fits hot writes"
	if m == nil {
		return "guard every access to the map with one sync.Mutex (a sync.RWMutex when reads dominate, with RLock for reads); " + alternatives + "."
	}
	reads, writes := readOps(*m), writeOps(*m)
	switch {
	case readMostly(*m):
		return fmt.Sprintf("guard every access with one sync.RWMutex: the map is %s, so take RLock to read and Lock to write; "+
			"if keys are written once and then only read, sync.Map does this without a lock.", rwText(*m))
	case writeHot(*m):
		return fmt.Sprintf("guard every access with one sync.Mutex; writes are %.0f%% of its operations, so if that lock becomes contended, "+
			"shard the map: N maps, each with its own mutex, picked by key hash.", 100*share(writes, reads+writes))
	}
	return "guard every access to the map with one sync.Mutex (lock around each read and write); " + alternatives + "."
}

// mutexes: one finding per mutex whose waits cost time, and starved
// RWMutex writers.
func (a *analysis) mutexes() {
	window := a.r.Window.Seconds * 1e9
	a.groups = report.GroupMutexes(a.r.Mutexes)
	for i := range a.groups {
		m := &a.groups[i]
		wait := float64(m.WaitNS) / 1e9
		if wait < minorShare*a.waitBase {
			continue
		}
		if m.Kind == report.KindRWMutexWrite && a.starving(m) {
			continue
		}
		who := "goroutines waited %s for it"
		switch m.Kind {
		case report.KindRWMutexRead:
			who = "readers waited %s for RLock"
		case report.KindRWMutexWrite:
			who = "writers waited %s for Lock"
		case report.KindFDWrite:
			who = "writers waited %s for its write lock"
		case report.KindFDRead:
			who = "readers waited %s for its read lock"
		case report.KindFDClose:
			who = "Close waited %s for its other users"
		}
		title := mutexLabel(*m) + ": " + fmt.Sprintf(who, report.Duration(m.WaitNS))
		if window > 0 {
			title += fmt.Sprintf(" in %.1fs", a.r.Window.Seconds)
		}
		detail := fmt.Sprintf("%s: %d waits, p50 %s, p99 %s, max %s", m.Kind, m.Contentions,
			report.Duration(m.P50NS), report.Duration(m.P99NS), report.Duration(m.MaxWaitNS))
		if m.Goroutines >= manyWaiters {
			detail += fmt.Sprintf(", by %d goroutines", m.Goroutines)
		}
		if ws := waiterText(m.Waiters, 2); ws != "" {
			detail += "; waited for at " + ws
		}
		if hs := holderText(m.Holders, 2); hs != "" {
			detail += "; released to waiters by " + hs
		}
		advice, used := a.mutexAdvice(m)
		if used != nil {
			detail += fmt.Sprintf("; the waiting functions also use %s (%d reads, %d writes)", mapLabel(*used), readOps(*used), writeOps(*used))
			if _, ok := a.contended[used.ID()]; !ok {
				a.contended[used.ID()] = m
			}
		}
		severity := report.SeverityInfo
		if long(m, window) {
			severity = report.SeverityWarning
		}
		a.add(cost, severity, title, detail+".", advice, wait, a.waitBase)
	}
}

// fileAdvice is the fix for goroutines waiting for a file's or socket's
// lock, which each read or write holds for its system call.
func fileAdvice(m *report.Mutex) string {
	what := "the file or socket"
	if m.Name != "" {
		what = report.Short(m.Name)
	}
	switch m.Kind {
	case report.KindFDWrite:
		return fmt.Sprintf("every write to %s holds its write lock for the system call, so goroutines writing to it take turns: "+
			"spread them over several sockets (SO_REUSEPORT, a socket per CPU, each with its own readers and writers), or hand "+
			"the writes to one goroutine that batches them.", what)
	case report.KindFDRead:
		return fmt.Sprintf("every read of %s holds its read lock for the system call, so goroutines reading it take turns: "+
			"read it from one goroutine and hand the data out, or give each reader a socket of its own (SO_REUSEPORT).", what)
	}
	return fmt.Sprintf("Close of %s waited for the reads and writes in flight on it: end them first (a deadline, or a "+
		"cancelled context), or close it from the goroutine that uses it.", what)
}

// readerHandoffs is the share of hand-offs to waiting writers that readers
// made, leaving with RUnlock; the rest were writers' Unlock.
func readerHandoffs(hs []report.Holder) float64 {
	var readers, all uint64
	for _, h := range hs {
		all += h.Count
		for _, f := range h.Stack {
			if fn := report.FrameFunc(f); fn == "sync.(*RWMutex).RUnlock" || fn == "sync.(*RWMutex).rUnlockSlow" {
				readers += h.Count
				break
			}
		}
	}
	if all == 0 {
		return 1 // no hand-off seen: trust the kind
	}
	return float64(readers) / float64(all)
}

// long says whether a mutex's waits are long: a p99 over longWaitP99, or a
// total over longWaitShare of the window.
func long(m *report.Mutex, window float64) bool {
	return window > 0 && float64(m.WaitNS) > longWaitShare*window ||
		m.P99NS > longWaitP99 && m.Contentions >= minWaitsForP99
}

// mutexAdvice picks the fix for a long-waited mutex from the map its
// waiters use, if one is found.
func (a *analysis) mutexAdvice(m *report.Mutex) (string, *report.Map) {
	if report.FileLock(m.Kind) {
		return fileAdvice(m), nil
	}
	used := a.guardedMap(m)
	if own := a.ownCaller(m); own != "" {
		return fmt.Sprintf("this lock is %s's, not your code's: your code reaches it from %s. Take it less often there "+
			"(batch or cache what it does), or spread the load over several instances of what the lock guards "+
			"(for a net/http Transport: one per upstream, or more idle connections per host).",
			pkgOf(topFunc(m.Waiters[0].Stack)), report.ShortFrame(own)), used
	}
	// Writers that wait more often than the map is written lock for
	// something else (etcd's range takes txMu's write lock to open a bolt
	// cursor, and writes its map of buckets only on a miss): the map's
	// shape says nothing of what they wait for.
	fits := used != nil && (m.Kind != report.KindRWMutexWrite || 2*writeOps(*used) >= m.Contentions)
	if fits {
		reads, writes := readOps(*used), writeOps(*used)
		label := mapLabel(*used)
		switch {
		case used.Kind == report.KindSharded && used.Sharded != nil && used.Sharded.Imbalance >= shardImbalance:
			return fmt.Sprintf("this lock guards a shard of %s, whose busiest shard has %.1f× the mean's operations: even the "+
				"shards out (see the finding on its balance).", label, used.Sharded.Imbalance), used
		case used.Kind == report.KindSharded:
			return fmt.Sprintf("this lock guards a shard of %s, whose shards are even (the busiest has %.1f× the mean's operations): "+
				"use more shards, or shorten what is done under each shard's lock.", label, used.Sharded.Imbalance), used
		case readMostly(*used) && a.isRWMutex(m.Address) && used.Deletes == 0 && used.Kind == report.KindMap:
			// Read-mostly over stable keys: what sync.Map is made for.
			return fmt.Sprintf("%s is %s and no key was deleted, yet its readers and writer wait for each other: "+
				"a sync.Map fits keys written once and read many times (its loads take no lock), or keep the map in an "+
				"atomic.Pointer and replace it with an updated copy on each write (copy-on-write snapshot), so readers never wait.",
				label, rwText(*used)), used
		case readMostly(*used) && a.isRWMutex(m.Address):
			return fmt.Sprintf("%s is %s, yet its readers and writer wait for each other: build the new map outside the lock "+
				"and swap it in under a short Lock, or keep the map in an atomic.Pointer and replace it with an updated copy on "+
				"each write (copy-on-write snapshot), so readers never wait.", label, rwText(*used)), used
		case readMostly(*used):
			return fmt.Sprintf("%s is %s: make this lock a sync.RWMutex and take RLock in the readers (%s), "+
				"or keep the map in an atomic.Pointer and replace it with an updated copy on each write (copy-on-write snapshot), "+
				"so readers never lock.", label, rwText(*used), strings.Join(mapFuncs(*used, report.OpRead), ", ")), used
		case writeHot(*used) && !manyKeys(*used):
			// One or two keys: sharding by key cannot spread the writes.
		case writeHot(*used):
			if k, sh, ok := topKey(*used); ok && sh >= hotKeyShare {
				return fmt.Sprintf("%s is write-hot and key %q takes %.0f%% of its operations, so sharding by key hash alone would move "+
					"the contention to that key's shard: keep that key's value out of the map (its own atomic, or updates batched "+
					"per goroutine), and shard the rest by key hash (N maps, each with its own mutex).", label, k.Key, 100*sh), used
			}
			return fmt.Sprintf("%s is write-hot (%.0f%% of its operations are writes) with keys spread out: shard it by key hash "+
				"into N maps, each with its own mutex, so writers of different keys stop waiting for each other.",
				label, 100*share(writes, reads+writes)), used
		}
	}
	holders := holderText(m.Holders, 2)
	if holders == "" {
		holders = "the code that holds it"
	}
	return "shorten the critical section: move work that does not need the lock (I/O, allocation, computation) out of " +
		"Lock/Unlock in " + holders + ", or split the state so that goroutines lock different mutexes.", used
}

// guardedMap is the map most used in the same functions as the mutex's
// waiters, if at least guardedShare of its operations are there, and at
// least one for every two waits (each wait ends in a critical section that
// would use the map): probably the map the mutex guards. That one function
// locks the mutex and also touches a map says little (in nats-server,
// flushClients locks each client and empties a map of its own, once for
// dozens of waits on the clients' locks).
func (a *analysis) guardedMap(m *report.Mutex) *report.Map {
	waiters := map[string]bool{}
	for _, w := range m.Waiters {
		if f := topFunc(w.Stack); f != "" {
			waiters[f] = true
		}
	}
	var best *report.Map
	var bestOps uint64
	for i := range a.r.Maps {
		mp := &a.r.Maps[i]
		var in, all uint64
		for _, s := range mp.Sites {
			all += s.Count
			if waiters[topFunc(s.Stack)] {
				in += s.Count
			}
		}
		if in > 0 && float64(in) >= guardedShare*float64(all) && 2*in >= m.Contentions && in > bestOps {
			best, bestOps = mp, in
		}
	}
	return best
}

// starving reports and adds a finding when RWMutex writers wait much
// longer than its readers.
func (a *analysis) starving(w *report.Mutex) bool {
	if w.Contentions < minWaitsForP99 {
		return false
	}
	var rd *report.Mutex
	for i := range a.groups {
		if m := &a.groups[i]; m.Label() == w.Label() && m.Kind == report.KindRWMutexRead {
			rd = m
		}
	}
	if rd == nil || rd.Contentions == 0 || readerHandoffs(w.Holders) < 0.5 {
		return false // the writers wait mostly for each other, not for readers
	}
	window := a.r.Window.Seconds * 1e9
	bigTotal := window > 0 && float64(w.WaitNS) > longWaitShare*window
	if w.P99NS <= longWaitP99 && !bigTotal {
		return false
	}
	var readP99 uint64
	if rd != nil {
		readP99 = rd.P99NS
	}
	if w.P99NS < starveFactor*readP99 && !bigTotal {
		return false
	}
	title := fmt.Sprintf("%s: writers wait for readers (writer p99 %s, reader p99 %s)", mutexLabel(*w),
		report.Duration(w.P99NS), report.Duration(readP99))
	detail := fmt.Sprintf("Lock waited %d times for readers to leave, %s in all (max %s)", w.Contentions,
		report.Duration(w.WaitNS), report.Duration(w.MaxWaitNS))
	if window > 0 {
		detail += fmt.Sprintf(", %.0f%% of the %.1fs window", 100*float64(w.WaitNS)/window, a.r.Window.Seconds)
	}
	if rd != nil {
		detail += fmt.Sprintf("; readers waited %d times, %s in all", rd.Contentions, report.Duration(rd.WaitNS))
	}
	if ws := waiterText(w.Waiters, 1); ws != "" {
		detail += "; the writer waits at " + ws
	}
	readers := holderText(w.Holders, 2)
	if readers != "" {
		detail += "; the last reader out was " + readers
	} else {
		readers = "the readers"
	}
	advice := "readers hold RLock too long: in " + readers + " copy what you need and RUnlock before working on it. " +
		"A waiting writer also blocks new readers, so this stalls them too; if writes are rare, keep the data in an " +
		"atomic.Pointer snapshot that readers load without locking and writers replace."
	a.add(cost, report.SeverityWarning, title, detail+".", advice, float64(w.WaitNS)/1e9, a.waitBase)
	return true
}

// interleaved: maps written by goroutines in turn — A, then B, then A
// again within 10ms — with no race seen. A map filled by one goroutine and
// then used by another never does this.
func (a *analysis) interleaved() {
	for _, m := range a.r.Maps {
		if a.raced[m.ID()] || m.InterleavedWrites == 0 || m.Interleave == nil {
			continue
		}
		frames := interleaveFrames(m.Interleave)
		if len(frames) == 0 || allStdlib(frames) || !a.anyOwn(frames) {
			continue // a library's maps are the library's to guard
		}
		var sides []string
		for _, s := range m.Interleave.Sides {
			sides = append(sides, sideText(s))
		}
		title := fmt.Sprintf("%s is written by goroutines in turn (interleaved writes, %d times): a race if no lock guards it",
			mapLabel(m), m.InterleavedWrites)
		detail := fmt.Sprintf("one goroutine wrote it, another wrote it, then the first again, within 10ms, %d times; "+
			"for example %s. No concurrent access was seen (%d reads, %d writes, %d deletes by %d goroutines)",
			m.InterleavedWrites, strings.Join(sides, " and "), m.Reads, m.Writes, m.Deletes, m.Goroutines)
		advice := "check that every read and write holds the same mutex (`go test -race` will tell); a map that each " +
			"goroutine should own needs one map per goroutine."
		if mu := a.lockedBy(frames); mu != nil {
			detail += fmt.Sprintf("; every writing function also waited for %s", mutexLabel(*mu))
			a.add(tracing, report.SeverityInfo,
				fmt.Sprintf("%s is written by goroutines in turn, apparently under %s", mapLabel(m), mutexLabel(*mu)),
				detail+".", "nothing to fix if every access holds "+mutexLabel(*mu)+"; `go test -race` confirms it.", 0, 0)
			continue
		}
		a.add(risk, report.SeverityWarning, title, detail+".", advice, 0, 0)
	}
}

// ownCaller is, for a mutex locked in a library or the standard library
// rather than in the program's own code, the innermost frame of the
// program's own code on the top waiter's stack; "" otherwise.
func (a *analysis) ownCaller(m *report.Mutex) string {
	if a.r.Target.Module == "" || len(m.Waiters) == 0 {
		return ""
	}
	ws := append([]report.Waiter(nil), m.Waiters...)
	sort.SliceStable(ws, func(i, j int) bool { return ws[i].WaitNS > ws[j].WaitNS })
	if user := report.UserFrames(ws[0].Stack); len(user) == 0 || a.anyOwn(user[:1]) {
		return "" // locked in the program's own code
	}
	for _, w := range ws { // the longest-waiting stack that shows the program's code
		for _, f := range report.UserFrames(w.Stack)[1:] {
			if a.anyOwn([]string{f}) {
				return f
			}
		}
	}
	return ""
}

// pkgOf is the package of a short function name: "http" of
// "http.(*Transport).tryPutIdleConn".
func pkgOf(fn string) string {
	pkg, _, _ := strings.Cut(fn, ".")
	return pkg
}

// anyOwn says whether any frame is in the program's own code: its main
// module, or package main. With no module known, every frame counts.
func (a *analysis) anyOwn(frames []string) bool {
	mod := a.r.Target.Module
	for _, f := range frames {
		fn := report.FrameFunc(f)
		if mod == "" || strings.HasPrefix(fn, "main.") || strings.HasPrefix(fn, mod+"/") || strings.HasPrefix(fn, mod+".") {
			return true
		}
	}
	return false
}

// interleaveFrames are the distinct top user frames of the interleaved
// writes, with their import paths (allStdlib needs them).
func interleaveFrames(il *report.Interleave) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range il.Sides {
		f := topUser(s.Stack)
		if f == "" || seen[report.FrameFunc(f)] {
			continue
		}
		seen[report.FrameFunc(f)] = true
		out = append(out, f)
	}
	return out
}

// allStdlib says whether every frame is in Go's standard library, whose
// shared maps are guarded.
func allStdlib(frames []string) bool {
	for _, f := range frames {
		fn := report.FrameFunc(f)
		first, _, slash := strings.Cut(fn, "/")
		if !slash {
			first, _, _ = strings.Cut(fn, ".") // "os.f": the package is before the dot
		}
		if !stdlib[first] {
			return false
		}
	}
	return true
}

// stdlib are the top-level packages of Go's standard library.
var stdlib = map[string]bool{}

func init() {
	for _, p := range strings.Fields(`archive bufio bytes cmp compress container context crypto database debug
		embed encoding errors expvar flag fmt go hash html image index internal io iter log maps math mime
		net os path plugin reflect regexp runtime slices sort strconv strings structs sync syscall testing
		text time unicode unique unsafe vendor weak`) {
		stdlib[p] = true
	}
}

// lockedBy is a Mutex (not an RWMutex's read side) that every function in
// frames waited for, if there is one.
func (a *analysis) lockedBy(frames []string) *report.Mutex {
	for i := range a.r.Mutexes {
		m := &a.r.Mutexes[i]
		if m.Kind == report.KindRWMutexRead {
			continue
		}
		waiters := map[string]bool{}
		for _, w := range m.Waiters {
			waiters[topFunc(w.Stack)] = true
		}
		all := true
		for _, f := range frames {
			if !waiters[report.Short(report.FrameFunc(f))] {
				all = false
				break
			}
		}
		if all {
			return m
		}
	}
	return nil
}

// mapCPU: maps whose operations cost the target CPU time.
func (a *analysis) mapCPU() {
	if len(a.r.Maps) == 0 {
		a.mapCPUSites()
		return
	}
	for _, m := range a.r.Maps {
		if a.judged[m.ID()] || m.CPUSeconds < minorShare*a.cpuBase || m.CPUSeconds <= 0 {
			continue
		}
		title := fmt.Sprintf("%s: %s of CPU in map operations (%.1f%% of the target's CPU)", mapLabel(m),
			report.Duration(uint64(m.CPUSeconds*1e9)), 100*m.CPUSeconds/a.cpuBase)
		detail := fmt.Sprintf("%d reads, %d writes, %d deletes, %d iterations", m.Reads, m.Writes, m.Deletes, m.Iterations)
		if m.Maps > 1 {
			detail += fmt.Sprintf(" over %d maps", m.Maps)
		}
		if len(m.Sites) > 0 {
			s := m.Sites[0]
			if f := topUser(s.Stack); f != "" {
				detail += fmt.Sprintf("; the busiest site is a %s at %s (%d times)", s.Op, report.ShortFrame(f), s.Count)
			}
		}
		var advice string
		k, sh, hot := topKey(m)
		hot = hot && sh >= hotKeyShare && a.keysMeasured(m)
		if hot {
			detail += fmt.Sprintf("; key %q takes %.0f%% of the keyed operations", k.Key, 100*sh)
		}
		switch {
		case m.Kind == report.KindSyncMap && m.Maps >= manyMaps && m.Name == "":
			advice = fmt.Sprintf("these are short-lived sync.Maps (%d of them), dearer to make and fill than maps: "+
				"use a plain map where one goroutine owns it, or keep one sync.Map for longer.", m.Maps)
		case m.Maps >= manyMaps && m.Name == "":
			advice = fmt.Sprintf("these are short-lived maps (%d of them): allocate fewer — reuse one per goroutine "+
				"(clear it), size it once with make(map[K]V, n), or use a slice or struct for a handful of fixed keys.", m.Maps)
		case hot && readMostly(m):
			advice = fmt.Sprintf("the map is %s and key %q dominates: look it up once and keep the value, instead of looking "+
				"it up on every call.", rwText(m), k.Key)
		case readMostly(m):
			advice = fmt.Sprintf("the map is %s: %s", rwText(m), a.cheaperLookups(m))
		default:
			w := share(writeOps(m), mapOps(m))
			lead := fmt.Sprintf("writes are %.0f%% of its operations", 100*w)
			if w > 0.5 {
				lead = fmt.Sprintf("writes dominate (%.0f%% of its operations)", 100*w)
			}
			advice = lead + ": size the map once with make(map[K]V, n) to avoid growth, batch updates, " +
				"or keep the values in a slice indexed by a small integer key."
		}
		severity := a.mapSeverity(m)
		a.add(cost, severity, title, detail+".", advice, m.CPUSeconds, a.cpuBase)
	}
}

// mapSeverity is a map finding's severity by what its map work costs: a
// warning from 5% of the target's CPU time.
func (a *analysis) mapSeverity(m report.Map) string {
	if m.CPUSeconds >= 0.05*a.cpuBase {
		return report.SeverityWarning
	}
	return report.SeverityInfo
}

// shardBalance: a sharded map one of whose shards does most of the work,
// because of one hot key (which no sharding spreads) or because its keys
// hash unevenly over the shards.
func (a *analysis) shardBalance() {
	for _, m := range a.r.Maps {
		sh := m.Sharded
		if m.Kind != report.KindSharded || sh == nil || len(sh.Shards) < 2 || sh.Imbalance < shardImbalance || mapOps(m) < hotKeyMinOps {
			continue
		}
		busy := sh.Shards[0]
		var ops, waits, waitNS uint64
		for _, s := range sh.Shards {
			ops += s.Ops
			waitNS += s.WaitNS
			waits += s.Contentions
		}
		title := fmt.Sprintf("%s: one shard takes %.0f%% of its operations (%.1f× the mean shard)", mapLabel(m),
			100*share(busy.Ops, ops), sh.Imbalance)
		detail := fmt.Sprintf("the busiest shard, map %s, had %d of %d operations over %d shards", busy.Address, busy.Ops, ops, len(sh.Shards))
		if busy.Mutex != "" {
			detail += fmt.Sprintf("; its mutex (%s) waited %s in %d waits, of the shards' %s", busy.Mutex,
				report.Duration(busy.WaitNS), busy.Contentions, report.Duration(waitNS))
		}
		var advice string
		switch {
		case len(m.HotKeys) == 0:
			detail += "; its keys were not recorded, so a hot key cannot be told from an uneven hash"
			advice = "trace it with --keys hash to tell whether one key or the shard hash makes that shard busy."
		case !a.keysMeasured(m):
			detail += fmt.Sprintf("; too few of its operations were probed (%d) to tell a hot key from an uneven hash",
				m.KeysProbed(a.r.Overhead.MapSamplingFraction))
			advice = "trace it for longer (--duration) to tell whether one key or the shard hash makes that shard busy."
		case sh.HotKey != "":
			count := uint64(0)
			for _, k := range m.HotKeys {
				if k.Key == sh.HotKey {
					count = k.Count
				}
			}
			detail += fmt.Sprintf("; key %q had %d operations: without them that shard is as busy as the others, so a hot key, "+
				"not the hash, makes it hot", sh.HotKey, count)
			advice = fmt.Sprintf("sharding cannot spread one key: take key %q out of the sharded map (its own atomic value or "+
				"mutex, or its updates batched per goroutine and merged now and then), and the shards are even.", sh.HotKey)
		default:
			detail += "; no one key accounts for it, so the keys hash unevenly over the shards"
			advice = "fix the shard hash: hash the whole key with a good hash (hash/maphash, or FNV-1a) and take it modulo the " +
				"shard count; a hash of part of the key, or keys that differ only in bits the modulo drops, pile into few shards."
		}
		// What the imbalance costs: the busiest shard's lock waits, else
		// the map's CPU time.
		costSeconds, base := float64(busy.WaitNS)/1e9, a.waitBase
		if busy.WaitNS == 0 {
			costSeconds, base = m.CPUSeconds, a.cpuBase
		}
		severity := a.mapSeverity(m)
		if waits > 0 && long(&report.Mutex{WaitNS: busy.WaitNS}, a.r.Window.Seconds*1e9) {
			severity = report.SeverityWarning
		}
		a.judged[m.ID()] = true
		a.add(cost, severity, title, detail+".", advice, costSeconds, base)
	}
}

// snapshots: copy-on-write snapshots rebuilt so often that copying them
// costs more than locking a shared map would.
func (a *analysis) snapshots() {
	for _, m := range a.r.Maps {
		sn := m.Snapshots
		if sn == nil || sn.Published < minSnapshots || sn.Entries < readOps(m) {
			continue
		}
		title := fmt.Sprintf("%s: copy-on-write snapshots rebuilt %d times copy more than they are read", mapLabel(m), sn.Published)
		detail := fmt.Sprintf("%d maps were built and stored into an atomic.Pointer or atomic.Value, %d entries in all (%d each on average), "+
			"and read %d times: %.1f entries copied per read", sn.Published, sn.Entries, sn.Entries/sn.Published, readOps(m),
			float64(sn.Entries)/float64(max(readOps(m), 1)))
		advice := "a snapshot pays when it is read far more often than rebuilt; here each read costs more copying than " +
			"an uncontended RLock: keep one map behind a sync.RWMutex and update it in place, or rebuild the snapshot less " +
			"often (batch the updates)."
		severity := a.mapSeverity(m)
		a.judged[m.ID()] = true
		a.add(cost, severity, title, detail+".", advice, m.CPUSeconds, a.cpuBase)
	}
}

// syncMapFit: a sync.Map whose keys keep changing, which sync.Map handles
// worst. It is made for keys written once and read many times, or for
// goroutines that read and overwrite disjoint keys; overwrites of existing
// keys alone, however many, are what it does well and raise nothing.
func (a *analysis) syncMapFit() {
	for _, m := range a.r.Maps {
		ops := mapOps(m)
		if m.Kind != report.KindSyncMap || ops < syncMapMinOps || m.Maps >= manyMaps && m.Name == "" {
			continue // short-lived sync.Maps have a finding of their own (mapCPU)
		}
		var misses, promotions, copies uint64
		if sm := m.SyncMap; sm != nil {
			misses, promotions, copies = sm.Misses, sm.Promotions, sm.DirtyCopies
		}
		missShare := share(misses, m.Reads)
		churn := missShare >= churnMissShare ||
			promotions >= churnPromotions && promotions*churnPromotionOps >= ops ||
			share(m.Deletes, ops) >= churnDeleteShare
		if !churn {
			continue
		}
		mix := fmt.Sprintf("%.0f%% loads, %.0f%% stores, %.0f%% deletes of %d operations", 100*share(m.Reads, ops),
			100*share(m.Writes, ops), 100*share(m.Deletes, ops), ops)
		if m.SyncMap != nil {
			mix += fmt.Sprintf("; %d misses (%.0f%% of loads: keys stored since the last promotion, looked up under its lock), "+
				"%d promotions and %d dirty-map copies (each copies the whole map)", misses, 100*missShare, promotions, copies)
		}
		title := fmt.Sprintf("%s: sync.Map does not suit this mix, its keys keep changing", mapLabel(m))
		var advice string
		if readOps(m) >= 3*writeOps(m) {
			advice = "sync.Map fits keys written once and read many times, or goroutines using disjoint keys; these keys are " +
				"stored and deleted all along. Reads still dominate: a plain map behind a sync.RWMutex (RLock to read) costs less."
		} else {
			advice = "sync.Map fits keys written once and read many times, or goroutines using disjoint keys; here stores and " +
				"deletes of changing keys are a large share: a sharded map (N maps, each with its own mutex, picked by key hash) " +
				"lets writers of different keys go on at once, with no whole-map copies."
		}
		severity := a.mapSeverity(m)
		a.judged[m.ID()] = true
		a.add(cost, severity, title, "measured: "+mix+".", advice, m.CPUSeconds, a.cpuBase)
	}
}

// mapCPUSites: with no map rows (the map probes were off), the call sites
// whose map operations cost CPU time, from the samples alone.
func (a *analysis) mapCPUSites() {
	for _, site := range a.r.CPU.Sites {
		if site.Seconds < minorShare*a.cpuBase || site.Seconds <= 0 {
			continue
		}
		title := fmt.Sprintf("map operations at %s: %s of CPU (%.1f%% of the target's CPU)", report.ShortFrame(site.Frame),
			report.Duration(uint64(site.Seconds*1e9)), 100*site.Seconds/a.cpuBase)
		a.add(cost, report.SeverityInfo, title,
			fmt.Sprintf("%d CPU samples landed in map operations called there; the map probes were off, so which maps and keys is not known.", site.Samples),
			"trace with map probes (without --no-maps) to see the maps, their keys and who else uses them.", site.Seconds, a.cpuBase)
	}
}

// hotKeys: one key taking a large share of a map's keyed operations, where
// that costs time: the map is used by goroutines waiting for a contended
// lock. (A hot key in a map that costs CPU is in that map's finding; one in
// a map nobody waits for costs nothing.)
func (a *analysis) hotKeys() {
	for _, m := range a.r.Maps {
		mu := a.contended[m.ID()]
		if mu == nil || a.judged[m.ID()] {
			continue
		}
		k, sh, ok := topKey(m)
		if !ok || sh < hotKeyShare || !a.keysMeasured(m) || !manyKeys(m) {
			continue
		}
		title := fmt.Sprintf("hot key %q in %s, used under contended %s: %.0f%% of %d keyed operations", k.Key, mapLabel(m),
			mutexLabel(*mu), 100*sh, m.KeyedOps())
		detail := fmt.Sprintf("key %q was used %d times out of %d", k.Key, k.Count, m.KeyedOps())
		if len(m.Sites) > 0 {
			s := m.Sites[0]
			if f := topUser(s.Stack); f != "" {
				detail += fmt.Sprintf("; the busiest site is a %s at %s (%d times)", s.Op, report.ShortFrame(f), s.Count)
			}
		}
		detail += fmt.Sprintf("; the map is used by the goroutines that wait for %s", mutexLabel(*mu))
		var advice string
		if readMostly(m) {
			advice = fmt.Sprintf("the map is %s: look key %q up once and keep the value (or cache it in an "+
				"atomic.Pointer refreshed on write) instead of looking it up under the lock on every call.", rwText(m), k.Key)
		} else {
			advice = fmt.Sprintf("writes to key %q serialize on the lock: give that key its own atomic counter or "+
				"mutex, or batch its updates per goroutine and merge them periodically.", k.Key)
		}
		// The share of the lock's waits that this key's operations stand for.
		a.add(cost, report.SeverityWarning, title, detail+".", advice, sh*float64(mu.WaitNS)/1e9, a.waitBase)
	}
}

// sampling: counts scaled from a sample.
func (a *analysis) sampling() {
	f := a.r.Overhead.MapSamplingFraction
	if f >= asGoodAsExact || f < 0 {
		return
	}
	if f == 0 {
		a.add(tracing, report.SeverityInfo, "map operations were not traced: the --overhead budget allowed no map probing",
			"the map probes cost more than the budget allows for this target, so no map counts, hot keys or races "+
				"were recorded (a fatal concurrent map access is still caught).",
			"raise --overhead (at most 25), or, for a short trace on a test or canary process, use --exact, which probes "+
				"every map operation whatever it costs.", 0, 0)
		return
	}
	if len(a.r.Maps) == 0 {
		return
	}
	detail := fmt.Sprintf("the map probes were attached %.1f%% of the time to stay within the --overhead budget; counts are scaled up by %.1f×, "+
		"and races while they were off were not seen (unless fatal).", 100*f, 1/max(f, 1e-6))
	switch {
	case a.r.Overhead.MapCountsLowerBoundWhy == report.LowerBoundShortWindows:
		detail += " Each window was cut at its first check after attaching, too soon to measure the work it covered: it is " +
			"taken to be its share of the time, and the counts are lower bounds."
	case a.r.Overhead.MapCountsLowerBound:
		detail += " The probes took most of the target's CPU time while attached and slowed its work there (a loop doing little but " +
			"map operations, a busy server whose map operations hold a contended lock), so the counts are lower bounds, perhaps " +
			"far below the truth; each map's CPU time, read from the CPU-clock samples, is not scaled: compare maps by it."
	}
	a.add(note, report.SeverityInfo,
		fmt.Sprintf("map counts are estimates: %.1f%% of map operations were probed", 100*f),
		detail,
		"for exact counts, trace a short while with --exact, which probes every map operation and can slow a map-heavy "+
			"loop many times over: on a test or canary process, not production.", 0, 0)
}

// overBudget: the mutex probes alone cost more than their part of the
// budget, so they were duty-cycled and their figures are estimates. A report from before
// they were governed only says what they cost.
func (a *analysis) overBudget() {
	o := a.r.Overhead
	if o.MutexCountsScaled {
		f := o.MutexSamplingFraction
		if f >= asGoodAsExact {
			return // the header says it; scaled by under 1%, nothing to explain
		}
		would := o.MutexRatio / max(f, 1e-6)
		part, theirs := o.Budget, fmt.Sprintf("the %g%% --overhead budget", 100*o.Budget)
		if o.MutexBudget > 0 && o.MutexBudget < o.Budget {
			part = o.MutexBudget
			theirs = fmt.Sprintf("the %.3g%% of the %g%% --overhead budget left to them", 100*part, 100*o.Budget)
		}
		own := cpuShare(o, o.OwnChargedSeconds)
		var took []string
		if s := cpuShare(o, o.SamplerSeconds); s > 0 {
			took = append(took, fmt.Sprintf("the CPU-clock samples took %.2f%% of the target's CPU", 100*s))
		}
		if own > 0 {
			took = append(took, fmt.Sprintf("maptrace's own CPU time %.2f%%, as the machine had no idle CPU", 100*own))
		}
		if o.MapHitCostNS > 0 && part < o.Budget {
			took = append(took, "the map probes keep a quarter of the rest")
		}
		if len(took) > 0 {
			theirs += " (" + strings.Join(took, "; ") + ")"
		}
		why := fmt.Sprintf("the mutex probes fire twice per park, at ~%s a hit on this machine, and would have cost ~%.1f%% of "+
			"the target's CPU", report.Duration(uint64(mutexHitCost(o))), 100*would)
		if would > part {
			why += ", over " + theirs
		} else {
			// Within their part on average: the governor holds it in each
			// period, and the contention came in bursts.
			why += " over the trace, within " + theirs + ", but more in its busiest stretches, and the budget holds in each half second"
		}
		fix := "for exact mutex figures, trace a short while with a larger --overhead (at most 25), on a test or canary " +
			"process if the contention is heavy."
		if own > 0 {
			fix = "for exact mutex figures, trace while the machine has a CPU to spare, or with a larger --overhead (at most 25)."
		}
		detail := fmt.Sprintf("%s; they were attached %.1f%% of the time. A wait counts only if it "+
			"began and ended while they were attached, so counts and wait times are scaled up by the share of the trace in "+
			"which a wait of its length could be seen: estimates, the longest waits the roughest.", why, 100*f)
		a.add(tracing, report.SeverityInfo,
			fmt.Sprintf("mutex figures are estimates: the mutex probes were attached %.1f%% of the time to stay within the budget", 100*f),
			detail, fix, 0, 0)
		return
	}
	if o.Budget <= 0 || o.Budget >= 1 || o.MutexRatio <= o.Budget {
		return
	}
	a.add(tracing, report.SeverityWarning,
		fmt.Sprintf("tracing mutexes cost ~%.1f%% of the target's CPU, over the %g%% --overhead budget", 100*o.MutexRatio, 100*o.Budget),
		fmt.Sprintf("the mutex probes stay attached and fire twice per park, at ~%s a hit on this machine; the budget limits only "+
			"the map probes. Lock hand-offs are slowed by about one hit each.", report.Duration(uint64(o.HitCostNS))),
		"keep such traces short (-d 10s), or trace maps alone with --no-mutex.", o.EstCostSeconds, 0)
}

// cpuShare is seconds of the estimated overhead (maptrace's charged CPU
// time, the CPU-clock samples' time) as a share of the target's CPU time.
func cpuShare(o report.Overhead, seconds float64) float64 {
	if o.Ratio <= 0 || o.EstCostSeconds <= 0 {
		return 0
	}
	return seconds / (o.EstCostSeconds / o.Ratio)
}

// mutexHitCost is what a mutex probe hit cost in the target, as measured:
// the calibrated hit in reports from before it was.
func mutexHitCost(o report.Overhead) float64 {
	c := o.HitCostNS
	if o.MutexHitCostNS > 0 {
		c = o.MutexHitCostNS
	}
	return c * max(o.HitCostFactor, 1)
}

// Helpers.

func (a *analysis) mapByID(id string) *report.Map {
	if id == "" {
		return nil
	}
	for i := range a.r.Maps {
		if a.r.Maps[i].ID() == id {
			return &a.r.Maps[i]
		}
	}
	return nil
}

func readOps(m report.Map) uint64  { return m.Reads + m.Iterations }
func writeOps(m report.Map) uint64 { return m.Writes + m.Deletes }
func mapOps(m report.Map) uint64   { return readOps(m) + writeOps(m) }

func readMostly(m report.Map) bool {
	return readOps(m) > 0 && readOps(m) >= readMostlyRatio*writeOps(m)
}

func writeHot(m report.Map) bool {
	return !readMostly(m) && writeOps(m) > 0 && share(writeOps(m), mapOps(m)) >= writeHotShare
}

func share(n, total uint64) float64 {
	if total == 0 {
		return 0
	}
	return float64(n) / float64(total)
}

// rwText says how much more a map is read than written, iterations counted
// as reads and deletes as writes.
func rwText(m report.Map) string {
	r, w := readOps(m), writeOps(m)
	reads, writes := "reads", "writes"
	if m.Iterations > 0 {
		reads = "reads and iterations"
	}
	if m.Deletes > 0 {
		writes = "writes and deletes"
	}
	if w == 0 {
		return fmt.Sprintf("read %d times with no write seen", r)
	}
	return fmt.Sprintf("read %.0f× as often as written (%d %s, %d %s)", float64(r)/float64(w), r, reads, w, writes)
}

// fewKeys is the most keys a map can hold for a slice scanned in order to
// be the cheaper lookup: one swiss-map group's worth.
const fewKeys = 8

// cheaperLookups is how to make a read-mostly map's lookups cheaper, by
// what its keys are: a handful only where enough were probed to say so.
func (a *analysis) cheaperLookups(m report.Map) string {
	n := len(m.HotKeys)
	all := !slices.ContainsFunc(m.HotKeys, func(k report.HotKey) bool { return k.Key == report.OtherKey })
	switch {
	case all && n > 0 && n <= fewKeys && a.keysMeasured(m):
		return fmt.Sprintf("with only %d keys seen, a slice scanned in order (or a field per key) is cheaper than a map, "+
			"or cache lookups the caller repeats.", n)
	case m.KeyType == "string":
		return "cache lookups the caller repeats, or use a smaller key (an int instead of a long string) to make each lookup cheaper."
	}
	return "cache lookups the caller repeats: look each key up once per call and keep the value."
}

// isRWMutex says whether the mutex at addr was seen as an RWMutex.
func (a *analysis) isRWMutex(addr string) bool {
	for _, m := range a.r.Mutexes {
		if m.Address == addr && m.Kind != report.KindMutex {
			return true
		}
	}
	return false
}

// keysMeasured says whether a map's keys were used enough to tell a hot one:
// hotKeyMinOps operations, of which report.FewProbed probed.
func (a *analysis) keysMeasured(m report.Map) bool {
	return m.KeyedOps() >= hotKeyMinOps && m.KeysProbed(a.r.Overhead.MapSamplingFraction) >= report.FewProbed
}

// manyKeys says whether a map was used with more than a couple of keys: in
// a map of one or two keys, one of them being "hot" says nothing.
func manyKeys(m report.Map) bool {
	n := 0
	for _, k := range m.HotKeys {
		if k.Key == report.OtherKey {
			return true
		}
		n++
	}
	return n >= 3
}

// topKey is the most used real key and its share of the keyed operations;
// none in a map whose keys were used alike.
func topKey(m report.Map) (report.HotKey, float64, bool) {
	var best report.HotKey
	if report.KeysAlike(m) {
		return best, 0, false
	}
	found := false
	for _, k := range m.HotKeys {
		if k.Key == report.OtherKey {
			continue
		}
		if !found || k.Count > best.Count {
			best, found = k, true
		}
	}
	if !found {
		return best, 0, false
	}
	return best, share(best.Count, m.KeyedOps()), true
}

// mapFuncs are the functions of m's sites with op.
func mapFuncs(m report.Map, op string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range m.Sites {
		if f := topFunc(s.Stack); s.Op == op && f != "" && !seen[f] {
			seen[f] = true
			out = append(out, f)
		}
	}
	if len(out) == 0 {
		return []string{"the readers"}
	}
	return out
}

// topUser is the first frame of a stack outside the runtime and sync.
func topUser(stack []string) string {
	if len(stack) == 0 {
		return ""
	}
	return report.UserFrames(stack)[0]
}

func topFunc(stack []string) string { return report.Short(report.FrameFunc(topUser(stack))) }

func mutexLabel(m report.Mutex) string { return m.Label() }

func mapLabel(m report.Map) string { return m.Label() }

func raceMapLabel(rc report.Race, m *report.Map) string {
	switch {
	case rc.Name != "":
		return "map " + report.Short(rc.Name)
	case m != nil:
		return mapLabel(*m)
	}
	return "map " + rc.Map
}

// waiterText names the top n waiting places, merging stacks that share
// their top user frame.
func waiterText(ws []report.Waiter, n int) string {
	var frames []string
	waits := map[string]uint64{}
	ns := map[string]uint64{}
	for _, w := range ws {
		f := topUser(w.Stack)
		if f == "" {
			continue
		}
		if _, ok := waits[f]; !ok {
			frames = append(frames, f)
		}
		waits[f] += w.Contentions
		ns[f] += w.WaitNS
	}
	sort.SliceStable(frames, func(i, j int) bool { return ns[frames[i]] > ns[frames[j]] })
	var parts []string
	for i, f := range frames {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s in %d waits)", report.ShortFrame(f), report.Duration(ns[f]), waits[f]))
	}
	return strings.Join(parts, ", ")
}

// holderText names the top n places that released a mutex to waiters.
func holderText(hs []report.Holder, n int) string {
	var frames []string
	count := map[string]uint64{}
	for _, h := range hs {
		f := topUser(h.Stack)
		if f == "" {
			continue
		}
		if _, ok := count[f]; !ok {
			frames = append(frames, f)
		}
		count[f] += h.Count
	}
	sort.SliceStable(frames, func(i, j int) bool { return count[frames[i]] > count[frames[j]] })
	var parts []string
	for i, f := range frames {
		if i == n {
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%d×)", report.ShortFrame(f), count[f]))
	}
	return strings.Join(parts, ", ")
}
