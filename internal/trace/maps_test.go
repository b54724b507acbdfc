package trace_test

import (
	"context"
	"fmt"
	"os"
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
	sess, err := trace.Start(trace.Options{PID: p.PID(), Mutex: true, Maps: true, Overhead: overhead, Log: os.Stderr})
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
// for string and int64 keys, classic and swiss maps.
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
			strs, ints := findMapNamed(r, "main.hotStrings"), findMapNamed(r, "main.hotInts")
			for _, m := range []*report.Map{strs, ints} {
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
					if m == ints {
						want = strconv.Itoa(1000 + n)
					}
					if k.Key != want || k.Count != uint64((n+1)*10+1) {
						t.Errorf("%s hot key %d = %s×%d, want %s×%d", m.Name, i, k.Key, k.Count, want, (n+1)*10+1)
					}
				}
			}
			if strs != nil && strs.KeyType != "string" || ints != nil && ints.KeyType != "int64" {
				t.Errorf("key types %q %q", strs.KeyType, ints.KeyType)
			}
			if len(r.Races) != 0 {
				t.Errorf("races in a single goroutine: %+v", r.Races)
			}
			// The main goroutine (goid 1) did all of it: the goid offset is right.
			if len(r.Goroutines) == 0 || r.Goroutines[0].Goid != 1 || r.Goroutines[0].MapOps < 1120 {
				t.Errorf("goroutines %+v: want goroutine 1 with the 1120 map operations", r.Goroutines)
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
				p := testtarget.Start(t, testtarget.Build(t, "../../testdata/maps", tc))
				r, answer := mapTrace(t, p, 100, "race "+kind+" 3000", 30*time.Second)
				wantKind := map[string]string{"write": "write/write", "read": "read/write", "iterate": "iterate/write"}[kind]
				var race *report.Race
				for i := range r.Races {
					if r.Races[i].Kind == wantKind {
						race = &r.Races[i]
					}
				}
				t.Logf("answer %q, ended by %s, target error %q, races %d", answer, r.EndedBy, r.TargetError, len(r.Races))
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
				if answer == "" && !strings.HasPrefix(r.TargetError, "concurrent map") {
					t.Errorf("target died of %q", r.TargetError)
				}
			})
		}
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
				t.Errorf("main.guarded: %+v, want writes from several goroutines", g)
			}
			if findMutex(r, "main.guardMu", report.KindMutex) == nil {
				t.Errorf("no contention on main.guardMu")
			}
		})
	}
}

// TestGovernorSampling runs map reads under the default budget: the map
// probes must be duty-cycled, the report must say so, and the scaled counts
// must estimate the true count — or, in a loop that does nothing but map
// reads, where the probes dominate the attached windows, be a lower bound
// that the report marks as such.
func TestGovernorSampling(t *testing.T) {
	testtarget.NeedAttach(t)
	for _, tc := range []struct {
		cmd        string
		budget     float64 // low enough that the probes are duty-cycled even where a hit is cheap
		lowerBound bool
	}{{"work 4000", 1, false}, {"loop 3000", 5, true}} {
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
			t.Logf("%s: sampling fraction %.4f (lower bound %v), estimated reads %d, true %.0f, ratio %.3f, overhead ratio %.4f",
				tc.cmd, o.MapSamplingFraction, o.MapCountsLowerBound, m.Reads, truth, ratio, o.Ratio)
			if o.MapSamplingFraction <= 0 || o.MapSamplingFraction >= 0.95 {
				t.Errorf("sampling fraction %v: want duty-cycled probes", o.MapSamplingFraction)
			}
			if o.MapCountsLowerBound != tc.lowerBound {
				t.Errorf("lower bound %v, want %v", o.MapCountsLowerBound, tc.lowerBound)
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
