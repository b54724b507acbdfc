package trace_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/maptrace/maptrace/internal/report"
	"github.com/maptrace/maptrace/internal/testtarget"
	"github.com/maptrace/maptrace/internal/trace"
)

// mapTrace attaches to p with map probes, sends cmd, waits for the answer
// (or the target's death) and returns the report and the answer.
func mapTrace(t *testing.T, p *testtarget.Proc, overhead float64, cmd string, timeout time.Duration) (*report.Report, string) {
	t.Helper()
	return traceCmd(t, p, trace.Options{Mutex: true, Maps: true, Overhead: overhead}, cmd, timeout)
}

// traceCmd traces p with opts while it answers cmd (or dies), and returns
// the report and the answer, "" if none came within timeout.
func traceCmd(t *testing.T, p *testtarget.Proc, opts trace.Options, cmd string, timeout time.Duration) (*report.Report, string) {
	t.Helper()
	opts.PID, opts.Log = p.PID(), os.Stderr
	sess, err := trace.Start(opts)
	if err != nil {
		t.Fatalf("start: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		r   *report.Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := sess.Wait(ctx)
		done <- result{r, err}
	}()
	p.Send(t, cmd)
	answer, _ := p.TryLine(timeout)
	cancel()
	res := <-done
	if res.err != nil {
		t.Fatalf("trace: %v", res.err)
	}
	return res.r, answer
}

// TestHotKeysExact checks exact per-key counts, with every operation probed,
// for string, int64, pointer and uint64 keys, classic and swiss maps. A
// pointer key is one key, in hex, though the runtime writes it as a pointer
// and reads it as a 64-bit integer; a uint64 is unsigned, though the runtime
// takes it as an int64.
func TestHotKeysExact(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, tc := range []string{"go1.20.14", "go1.23.12", "go1.24.13", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 100, "hot", 30*time.Second)
			if answer != "hot done" {
				t.Fatalf("target said %q", answer)
			}
			if r.Overhead.MapSamplingFraction != 1 || r.Overhead.LostEvents != 0 {
				t.Errorf("sampling fraction %v, %d lost events with --overhead 100", r.Overhead.MapSamplingFraction, r.Overhead.LostEvents)
			}
			p.Send(t, "hotptrs")
			ptrs := strings.Fields(p.Line(t, 10*time.Second))
			strs, ints, pts, uints := findMapNamed(r, "main.hotStrings"), findMapNamed(r, "main.hotInts"), findMapNamed(r, "main.hotPtrs"), findMapNamed(r, "main.hotUints")
			pairs := findMapNamed(r, "main.hotPairs")
			for _, m := range []*report.Map{strs, ints, pts, uints, pairs} {
				if m == nil {
					t.Fatalf("hot maps not found by name: %+v", r.Maps)
				}
				if m.Reads != 550 || m.Writes != 10 || m.Goroutines != 1 {
					t.Errorf("%s: %d reads, %d writes, %d goroutines; want 550, 10, 1", m.Name, m.Reads, m.Writes, m.Goroutines)
				}
				if len(m.HotKeys) != 10 {
					t.Errorf("%s: %d hot keys, want 10: %v", m.Name, len(m.HotKeys), m.HotKeys)
					continue
				}
				for i, k := range m.HotKeys {
					n := 9 - i // most used first
					want := fmt.Sprintf("user:%d", n)
					switch m {
					case ints:
						want = strconv.Itoa(1000 + n)
					case pts:
						want = ptrs[n]
					case uints:
						want = strconv.FormatUint(1<<63+uint64(n), 10)
					case pairs:
						want = fmt.Sprintf(`{name:"user:%d" id:%d on:%v zone:"eu-west-%d" port:%d}`, n, -n, n%2 == 0, n%3, 8000+n)
					}
					if k.Key != want || k.Count != uint64((n+1)*10+1) {
						t.Errorf("%s hot key %d = %s×%d, want %s×%d", m.Name, i, k.Key, k.Count, want, (n+1)*10+1)
					}
				}
			}
			if strs.KeyType != "string" || ints.KeyType != "int64" || pts.KeyType != "pointer" || uints.KeyType != "uint64" || pairs.KeyType != "other" {
				t.Errorf("key types %q %q %q %q %q", strs.KeyType, ints.KeyType, pts.KeyType, uints.KeyType, pairs.KeyType)
			}
			if len(r.Races) != 0 {
				t.Errorf("races in a single goroutine: %+v", r.Races)
			}
			// The main goroutine (goid 1) did all of it: the goid offset is right.
			if len(r.Goroutines) == 0 || r.Goroutines[0].Goid != 1 || r.Goroutines[0].MapOps < 2800 {
				t.Fatalf("goroutines %+v: want goroutine 1 with the 2800 map operations", r.Goroutines)
			}
			// Its hot keys name each key as the maps' rows do.
			for _, k := range r.Goroutines[0].HotKeys {
				if strings.HasPrefix(k.Key, "main.hotPtrs[") && !slices.Contains(ptrs, strings.TrimSuffix(strings.TrimPrefix(k.Key, "main.hotPtrs["), "]")) {
					t.Errorf("goroutine 1's hot key %s×%d, want one of %v", k.Key, k.Count, ptrs)
				}
			}
		})
	}
}

func findMapNamed(r *report.Report, name string) *report.Map {
	for i := range r.Maps {
		if r.Maps[i].Name == name {
			return &r.Maps[i]
		}
	}
	return nil
}

// TestRaces runs two goroutines on one map with no lock, for each kind of
// race; the runtime may kill the target, and the race must be reported either way.
func TestRaces(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, tc := range []string{"go1.22.12", "local"} {
		for _, kind := range []string{"write", "read", "iterate"} {
			t.Run(tc+"/"+kind, func(t *testing.T) {
				wantKind := map[string]string{"write": "write/write", "read": "read/write", "iterate": "iterate/write"}[kind]
				var (
					r      *report.Report
					answer string
					race   *report.Race
				)
				// Two goroutines overlap by chance: on a loaded machine they may
				// not in 3s, and then neither the runtime nor maptrace sees a
				// race. Only a second, longer run without one fails the test.
				for _, ms := range []int{3000, 6000} {
					p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
					r, answer = mapTrace(t, p, 100, fmt.Sprintf("race %s %d", kind, ms), 30*time.Second)
					for i := range r.Races {
						if r.Races[i].Kind == wantKind {
							race = &r.Races[i]
						}
					}
					t.Logf("%dms: answer %q, ended by %s, target error %q, races %d", ms, answer, r.EndedBy, r.TargetError, len(r.Races))
					if race != nil || r.TargetError != "" {
						break
					}
				}
				if race == nil {
					t.Fatalf("no %s race: %+v", wantKind, r.Races)
				}
				if race.Name != "main.racy" {
					t.Errorf("race on %q, want main.racy", race.Name)
				}
				wantFns := map[string]bool{"main.racyWrite": true, map[string]string{"write": "main.racyWrite", "read": "main.racyRead", "iterate": "main.racyIterate"}[kind]: true}
				for _, s := range race.Sides {
					if f := report.UserFrames(s.Stack); len(f) == 0 || !wantFns[report.FrameFunc(f[0])] {
						t.Errorf("race side goroutine %d %s at %v", s.Goid, s.Op, s.Stack)
					}
				}
				if len(race.Sides) != 2 || race.Sides[0].Goid == race.Sides[1].Goid {
					t.Errorf("race sides %+v: want two goroutines", race.Sides)
				}
				// The runtime catches most races ("concurrent map …"); some
				// break the map first, and a racing side then panics on it.
				switch {
				case answer != "":
				case r.TargetCrash == "fatal error" && strings.HasPrefix(r.TargetError, "concurrent map"):
				case r.TargetCrash == "panic" && len(report.UserFrames(r.TargetStack)) > 0 && wantFns[report.FrameFunc(report.UserFrames(r.TargetStack)[0])]:
					if f := findingTitled(r, "target died: panic: "+r.TargetError); f == nil || !strings.Contains(f.Detail, "was one side of the "+wantKind+" race") {
						t.Errorf("finding %+v, want it to name the race", f)
					}
				default:
					t.Errorf("target died of %s: %q at %v", r.TargetCrash, r.TargetError, r.TargetStack)
				}
			})
		}
	}
}

// TestTargetPanics checks that a panic nothing recovers is reported as the
// runtime printed it on the target's stderr, with the goroutine it killed,
// on the oldest Go, the first with swiss maps, and the newest, whose _panic
// lost its first field and which prints floats in their shortest form:
// errors and runtime errors by their text, strings as they are, numbers and
// bools by value, of a named type within its name, a struct by its type and
// address.
func TestTargetPanics(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, tc := range []string{"go1.19", "go1.24.13", "local"} {
		t.Run(tc, func(t *testing.T) {
			bin := testtarget.Build(t, "../../testdata/maps", tc)
			for _, kind := range []string{"nil", "text", "error", "wrapped", "index", "value", "int", "code", "float", "complex", "label", "flag"} {
				t.Run(kind, func(t *testing.T) {
					p := testtarget.Start(t, bin)
					r, answer := mapTrace(t, p, 100, "crash "+kind, 10*time.Second)
					if answer != "" {
						t.Fatalf("target answered %q: want it dead", answer)
					}
					printed, _, _ := strings.Cut(p.Exited(t, 10*time.Second), "\n")
					want, ok := strings.CutPrefix(printed, "panic: ")
					if !ok || want == "" {
						t.Fatalf("target printed %q, want a panic", printed)
					}
					if r.TargetCrash != "panic" || r.TargetError != want {
						t.Errorf("target died of %q %q, want panic %q", r.TargetCrash, r.TargetError, want)
					}
					if u := report.UserFrames(r.TargetStack); len(u) == 0 || report.FrameFunc(u[0]) != "main.crash" {
						t.Errorf("crash stack %v, want main.crash first", r.TargetStack)
					}
					f := findingTitled(r, "target died: panic: "+want)
					if f == nil || !strings.Contains(f.Detail, want+"\" in main.crash (main.go:") {
						t.Errorf("finding %+v, want one saying where", f)
					}
				})
			}
		})
	}
}

// TestLockedMapsNoRaces is the negative control: maps always used under a
// Mutex or RWMutex, and a busy sync.Map, are never races.
func TestLockedMapsNoRaces(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, tc := range []string{"go1.20.14", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 100, "locked 3000", 30*time.Second)
			if answer != "locked done" {
				t.Fatalf("target said %q", answer)
			}
			if len(r.Races) != 0 {
				t.Errorf("races reported on locked maps: %+v", r.Races)
			}
			g := findMapNamed(r, "main.guarded")
			if g == nil || g.Writes == 0 || g.Goroutines < 2 {
				t.Fatalf("main.guarded: %+v, want writes from several goroutines", g)
			}
			// The lock hands the map from one writer to the next: their
			// writes interleave, each pair by two goroutines of lockedWork.
			if g.InterleavedWrites == 0 || g.InterleavedWrites > g.Writes || g.Interleave == nil {
				t.Errorf("main.guarded: %d interleaved of %d writes, %+v", g.InterleavedWrites, g.Writes, g.Interleave)
			} else if s := g.Interleave.Sides; len(s) != 2 || s[0].Goid == s[1].Goid ||
				report.FrameFunc(report.UserFrames(s[0].Stack)[0]) != "main.lockedWork" || report.FrameFunc(report.UserFrames(s[1].Stack)[0]) != "main.lockedWork" {
				t.Errorf("main.guarded interleaved by %+v, want two goroutines in main.lockedWork", s)
			}
			if findMutex(r, "main.guardMu", report.KindMutex) == nil {
				t.Errorf("no contention on main.guardMu")
			}
		})
	}
}

// TestGovernorSampling runs map reads under the default budget: the map
// probes must be duty-cycled, the report must say so, and the scaled counts
// must estimate the true count (map reads among other work: ~40µs of it
// each, more than a hit costs even in a slow VM) — or, in a loop that does nothing but map
// reads, where the probes dominate the attached windows, be a lower bound
// that the report marks as such.
func TestGovernorSampling(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, tc := range []struct {
		cmd string
		// low enough that the probes are duty-cycled even where a hit is
		// cheap; for the reads among other work, high enough for windows
		// to estimate from on a busy machine, where 1% leaves too few
		budget     float64
		lowerBound bool
	}{{"work 4000 120000", 3, false}, {"loop 3000", 5, true}} {
		t.Run(strings.Fields(tc.cmd)[0], func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", "local"))
			r, answer := mapTrace(t, p, tc.budget, tc.cmd, 30*time.Second)
			f := strings.Fields(answer)
			if len(f) != 2 || f[0] != strings.Fields(tc.cmd)[0] {
				t.Fatalf("target said %q", answer)
			}
			truth, _ := strconv.ParseFloat(f[1], 64)
			m := findMapNamed(r, "main.loopMap")
			if m == nil {
				t.Fatalf("main.loopMap not seen: %+v", r.Maps)
			}
			o := r.Overhead
			ratio := float64(m.Reads) / truth
			t.Logf("%s: sampling fraction %.4f (lower bound %q), estimated reads %d, true %.0f, ratio %.3f, overhead ratio %.4f",
				tc.cmd, o.MapSamplingFraction, o.MapCountsLowerBoundWhy, m.Reads, truth, ratio, o.Ratio)
			if o.MapSamplingFraction <= 0 || o.MapSamplingFraction >= 0.95 {
				t.Errorf("sampling fraction %v: want duty-cycled probes", o.MapSamplingFraction)
			}
			if o.MapCountsLowerBound != tc.lowerBound || (o.MapCountsLowerBoundWhy != "") != tc.lowerBound {
				t.Errorf("lower bound %v (%q), want %v", o.MapCountsLowerBound, o.MapCountsLowerBoundWhy, tc.lowerBound)
			}
			if tc.lowerBound && ratio > 1.2 || !tc.lowerBound && (ratio < 0.6 || ratio > 1.6) {
				t.Errorf("estimated reads %d vs true %.0f: ratio %.2f", m.Reads, truth, ratio)
			}
			if o.Ratio > 1.6*tc.budget/100 {
				t.Errorf("estimated overhead %.3f of the target's CPU, budget %g%%", o.Ratio, tc.budget)
			}
		})
	}
}

// TestLateHotKey reads a map with a million distinct keys, one of which
// turns hot halfway through, with every operation probed: the late hot key
// must be the map's top hot key with about its true count, however many
// keys came before it, and no key count may be lost.
func TestLateHotKey(t *testing.T) {
	testtarget.NeedRoot(t)
	const ops = 1_000_000
	p := testtarget.Start(t, testtarget.Build(t, "../../testdata/latehot", "local"))
	start := time.Now()
	r, answer := mapTrace(t, p, 100, fmt.Sprintf("late %d", ops), 50*time.Second)
	f := strings.Fields(answer)
	if len(f) != 3 || f[0] != "late" {
		t.Fatalf("target said %q", answer)
	}
	key := f[1]
	truth, _ := strconv.ParseUint(f[2], 10, 64)
	m := findMapNamed(r, "main.lateMap")
	if m == nil {
		t.Fatalf("main.lateMap not seen: %+v", r.Maps)
	}
	if len(m.HotKeys) == 0 {
		t.Fatalf("main.lateMap: no hot keys")
	}
	top := m.HotKeys[0]
	t.Logf("%d reads in %v (trace included); top hot key %s×%d, true %d (%.4f); other %v; lost events %d (keys %d)",
		m.Reads, time.Since(start).Round(time.Millisecond), top.Key, top.Count, truth, float64(top.Count)/float64(truth),
		m.HotKeys[len(m.HotKeys)-1], r.Overhead.LostEvents, r.Overhead.Lost.Keys)
	if top.Key != key {
		t.Errorf("top hot key %s×%d, want %s: %v", top.Key, top.Count, key, m.HotKeys)
	}
	if diff := math.Abs(float64(top.Count)-float64(truth)) / float64(truth); diff > 0.03 {
		t.Errorf("hot key counted %d, true %d: off by %.1f%%", top.Count, truth, 100*diff)
	}
	if m.Reads != ops {
		t.Errorf("%d reads, want %d", m.Reads, ops)
	}
	var sum uint64
	for _, k := range m.HotKeys {
		sum += k.Count
	}
	if sum != m.Reads {
		t.Errorf("hot key counts add up to %d, want the %d keyed operations", sum, m.Reads)
	}
	// The key table is drained every 250ms or at half full; on a busy
	// machine the drain can fall behind 400k new keys a second. What it
	// misses must be counted, as key operations, and stay small.
	if r.Overhead.LostEvents != r.Overhead.Lost.Keys || r.Overhead.Lost.Keys > ops/10 {
		t.Errorf("%d lost events (%d key operations): want only key operations, at most %d", r.Overhead.LostEvents, r.Overhead.Lost.Keys, ops/10)
	}
}

// TestSyncMap checks exact sync.Map operation counts and hot keys, with
// every operation probed, for string and int keys: sync.(*Map) methods up to
// Go 1.23, internal/sync.HashTrieMap's from 1.24.
func TestSyncMap(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.19", "go1.20.14", "go1.22.12", "go1.24.13", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 100, "synchot", 30*time.Second)
			if !strings.HasPrefix(answer, "synchot done") {
				t.Fatalf("target said %q", answer)
			}
			writes := uint64(20)
			if answer == "synchot done clear" {
				writes++ // Clear, from Go 1.23
			}
			// Key i: one Store, (i+1)*10 Loads, and the extra operations of
			// keys 9, 8, 7 and 0 (testdata/maps syncHot).
			extra := map[int]uint64{9: 5, 8: 3, 7: 2, 0: 3}
			for _, name := range []string{"main.syncStrings", "main.syncInts"} {
				m := findMapNamed(r, name)
				if m == nil {
					t.Fatalf("%s not found by name: %+v", name, r.Maps)
				}
				if m.Kind != report.KindSyncMap || m.Type != "sync.Map" {
					t.Errorf("%s: kind %q, type %q", name, m.Kind, m.Type)
				}
				if m.Reads != 550 || m.Writes != writes || m.Deletes != 3 || m.Iterations != 2 || m.Goroutines != 1 {
					t.Errorf("%s: %d reads, %d writes, %d deletes, %d ranges, %d goroutines; want 550, %d, 3, 2, 1",
						name, m.Reads, m.Writes, m.Deletes, m.Iterations, m.Goroutines, writes)
				}
				wantType := map[string]string{"main.syncStrings": "string", "main.syncInts": "int64"}[name]
				if m.KeyType != wantType {
					t.Errorf("%s: key type %q, want %q", name, m.KeyType, wantType)
				}
				if len(m.HotKeys) != 10 {
					t.Errorf("%s: %d hot keys, want 10: %v", name, len(m.HotKeys), m.HotKeys)
					continue
				}
				for i, k := range m.HotKeys {
					n := 9 - i // most used first
					want := fmt.Sprintf("user:%d", n)
					if name == "main.syncInts" {
						want = strconv.Itoa(1000 + n)
					}
					count := uint64((n+1)*10+1) + extra[n]
					if k.Key != want || k.Count != count {
						t.Errorf("%s hot key %d = %s×%d, want %s×%d", name, i, k.Key, k.Count, want, count)
					}
				}
				// Only the classic sync.Map (to Go 1.23) has slow paths: the
				// first Load of each new key misses.
				if classic := tc == "go1.19" || tc == "go1.20.14" || tc == "go1.22.12"; classic != (m.SyncMap != nil && m.SyncMap.Misses > 0) {
					t.Errorf("%s: slow paths %+v", name, m.SyncMap)
				}
				if len(m.Sites) == 0 || report.FrameFunc(report.UserFrames(m.Sites[0].Stack)[0]) != "main.syncHot" {
					t.Errorf("%s: sites %+v, want main.syncHot's", name, m.Sites)
				}
			}
			if len(r.Races) != 0 {
				t.Errorf("races on sync.Maps: %+v", r.Races)
			}
			// Up to Go 1.23 a sync.Map keeps Go maps inside: their
			// operations are the sync.Map's, not rows of their own.
			for _, m := range r.Maps {
				if strings.Contains(m.Type, "sync.entry") {
					t.Errorf("sync.Map internals reported as a map: %+v", m)
				}
			}
		})
	}
}

// TestSyncMapCPU checks that CPU time in sync.Map loads, up to Go 1.23 most
// of it in the Go map inside, goes to the sync.Map's row.
func TestSyncMapCPU(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.22.12", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r := cpuTrace(t, p, trace.Options{Mutex: true, Maps: true, Overhead: 5}, "syncloop 1500")
			m := findMapNamed(r, "main.syncLoopMap")
			if m == nil {
				t.Fatalf("main.syncLoopMap not seen: %+v", r.Maps)
			}
			t.Logf("%s: %.3fs CPU in %d loads (%d samples in maps, %.3fs); %.3fs of the target's %.3fs",
				m.Name, m.CPUSeconds, m.Reads, r.CPU.MapSamples, r.CPU.MapSeconds, r.CPU.MapSeconds, r.CPU.Seconds)
			if m.Kind != report.KindSyncMap || m.CPUSeconds < 0.5*r.CPU.MapSeconds || r.CPU.MapSamples < 20 {
				t.Errorf("%s (%s): %.3fs of %.3fs of map CPU time, want most", m.Name, m.Kind, m.CPUSeconds, r.CPU.MapSeconds)
			}
		})
	}
}

// TestSyncMapMisses checks a sync.Map's misses, promotions and dirty-map
// copies, Go 1.19 to 1.23, against what the target saw of its own map.
func TestSyncMapMisses(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.19", "go1.20.14", "go1.23.12"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 100, "syncmiss", 30*time.Second)
			var want report.SyncMapStats
			if _, err := fmt.Sscanf(answer, "syncmiss %d %d %d", &want.Misses, &want.Promotions, &want.DirtyCopies); err != nil {
				t.Fatalf("target said %q", answer)
			}
			m := findMapNamed(r, "main.syncMissMap")
			if m == nil {
				t.Fatalf("main.syncMissMap not seen: %+v", r.Maps)
			}
			if m.SyncMap == nil || *m.SyncMap != want {
				t.Errorf("%s: %+v, the target saw %+v", m.Name, m.SyncMap, want)
			}
		})
	}
}

// TestSyncMapSampled checks sync.Map counts and its hot key under the
// default budget, with the map probes duty-cycled: the scaled estimates must
// be within 10% of what the target counted itself, or, where the report
// says they are lower bounds (a probe hit costs so much more than a
// sync.Map operation that the probes took most of the windows), no more
// than 10% above it. 20 seconds: on Go 1.19
// the windows cover a tenth of the work, and 10 seconds' gave estimates
// 1–10% high.
func TestSyncMapSampled(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.19", "go1.22.12", "go1.24.13", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 5, "syncwork 20000", 60*time.Second)
			var loads, stores, hot uint64
			if _, err := fmt.Sscanf(answer, "syncwork %d %d %d", &loads, &stores, &hot); err != nil {
				t.Fatalf("target said %q", answer)
			}
			m := findMapNamed(r, "main.syncWorkMap")
			if m == nil {
				t.Fatalf("main.syncWorkMap not seen: %+v", r.Maps)
			}
			f := r.Overhead.MapSamplingFraction
			t.Logf("sampling fraction %.3f (lower bound %v %q, overhead ratio %.3f): %d reads (true %d), %d writes (true %d), hot keys %v (true user:hot×%d)",
				f, r.Overhead.MapCountsLowerBound, r.Overhead.MapCountsLowerBoundWhy, r.Overhead.Ratio, m.Reads, loads, m.Writes, stores, m.HotKeys, hot)
			if f <= 0 || f >= 0.95 {
				t.Errorf("sampling fraction %v: want duty-cycled probes", f)
			}
			const tolerance = 0.10
			within := func(what string, got, want uint64) {
				d := (float64(got) - float64(want)) / float64(want)
				switch {
				case r.Overhead.MapCountsLowerBound && d > tolerance:
					t.Errorf("%s: %d, true %d: a lower bound %.1f%% high", what, got, want, 100*d)
				case !r.Overhead.MapCountsLowerBound && math.Abs(d) > tolerance:
					t.Errorf("%s: %d, true %d: off by %.1f%%", what, got, want, 100*d)
				}
			}
			within("reads", m.Reads, loads)
			within("writes", m.Writes, stores)
			if len(m.HotKeys) == 0 || m.HotKeys[0].Key != "user:hot" {
				t.Fatalf("hot keys %v, want user:hot first", m.HotKeys)
			}
			within("hot key user:hot", m.HotKeys[0].Count, hot)
		})
	}
}

// TestSnapshots checks copy-on-write snapshots, every operation probed:
// maps built and stored into an atomic.Pointer or an atomic.Value are
// counted as published, with their entries, on the row of the function that
// builds them.
func TestSnapshots(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.19", "go1.22.12", "go1.24.13", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 100, "snapshot 40 50 20", 30*time.Second)
			var published, entries, reads uint64
			if _, err := fmt.Sscanf(answer, "snapshot %d %d %d", &published, &entries, &reads); err != nil {
				t.Fatalf("target said %q", answer)
			}
			var m *report.Map
			for i := range r.Maps {
				if r.Maps[i].Class == "main.buildSnapshot" {
					m = &r.Maps[i]
				}
			}
			if m == nil {
				t.Fatalf("no maps from main.buildSnapshot: %+v", r.Maps)
			}
			t.Logf("%s: %d maps, %d reads, %d writes, snapshots %+v", m.Label(), m.Maps, m.Reads, m.Writes, m.Snapshots)
			if m.Snapshots == nil || *m.Snapshots != (report.Snapshots{Published: published, Entries: entries}) {
				t.Errorf("snapshots %+v, want %d published with %d entries", m.Snapshots, published, entries)
			}
			if uint64(m.Maps) != published || m.Writes != entries || m.Reads != reads {
				t.Errorf("%d maps, %d writes, %d reads; want %d, %d, %d", m.Maps, m.Writes, m.Reads, published, entries, reads)
			}
			// 50 entries copied per snapshot, read 20 times: dearer than a lock.
			found := false
			for _, f := range r.Findings {
				found = found || strings.HasPrefix(f.Title, m.Label()+": copy-on-write snapshots rebuilt 40 times")
			}
			if !found {
				t.Errorf("no finding on the snapshots: %+v", r.Findings)
			}
		})
	}
}

// TestSnapshotsNotReused checks that what the allocator puts where a freed
// map's header was is not taken for that map when stored into an atomic: no
// snapshot is counted for maps that were never published.
func TestSnapshotsNotReused(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.22.12", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 100, "reused 1000", 30*time.Second)
			var stores int
			if _, err := fmt.Sscanf(answer, "reused %d", &stores); err != nil || stores < 100 {
				t.Fatalf("target said %q: want at least 100 stores of reused addresses", answer)
			}
			for _, m := range r.Maps {
				if m.Class == "main.makeShortLived" {
					if m.Maps != 1000 || m.Snapshots != nil {
						t.Errorf("%s: %d maps, snapshots %+v; want 1000 maps, none published (%d stores of what took their place)", m.Label(), m.Maps, m.Snapshots, stores)
					}
					return
				}
			}
			t.Fatalf("no maps from main.makeShortLived: %+v", r.Maps)
		})
	}
}

// findingTitled is the report's finding with that title, or nil.
func findingTitled(r *report.Report, title string) *report.Finding {
	for i := range r.Findings {
		if r.Findings[i].Title == title {
			return &r.Findings[i]
		}
	}
	return nil
}

// TestTwinFirstSight checks that a map first seen by two probes at once, on
// two CPUs, is one map: 2000 maps, each first read by two goroutines
// released together from a spinning barrier, are 2000 maps of one class with
// 4000 reads.
func TestTwinFirstSight(t *testing.T) {
	testtarget.NeedRoot(t)
	for _, tc := range []string{"go1.22.12", "local"} {
		t.Run(tc, func(t *testing.T) {
			p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
			r, answer := mapTrace(t, p, 100, "twins", 60*time.Second)
			var maps, reads uint64
			if _, err := fmt.Sscanf(answer, "twins %d %d", &maps, &reads); err != nil || reads != 2*maps {
				t.Fatalf("target said %q", answer)
			}
			for _, m := range r.Maps {
				if m.Class == "main.twinRead" {
					if uint64(m.Maps) != maps || m.Reads != reads {
						t.Errorf("%s: %d maps, %d reads; the target made %d maps and %d reads", m.Label(), m.Maps, m.Reads, maps, reads)
					}
					return
				}
			}
			t.Fatalf("no maps from main.twinRead: %+v", r.Maps)
		})
	}
}
