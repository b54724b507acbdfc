package collector

import (
	"fmt"
	"testing"
)

// TestSpaceSavingExact: with no more keys than its capacity every count is
// exact, in any order of weighted adds.
func TestSpaceSavingExact(t *testing.T) {
	s := newSpaceSaving[string](4)
	for i := 0; i < 3; i++ {
		s.add("a", 5)
		s.add("b", 2)
		s.add("c", 1)
		s.add("d", 0) // nothing
	}
	got := s.top()
	want := []ssCount[string]{{"a", 15, 0}, {"b", 6, 0}, {"c", 3, 0}}
	if fmt.Sprint(got) != fmt.Sprint(want) || s.total != 24 {
		t.Errorf("top %v, total %d; want %v, 24", got, s.total, want)
	}
}

// TestSpaceSavingLateHotKey: a stream of one-off keys in which one key turns
// hot halfway through. The hot key is kept, first, with its guaranteed
// count exact (it is never evicted once hot), and every kept key's bounds
// hold its true count.
func TestSpaceSavingLateHotKey(t *testing.T) {
	const (
		capacity = 64
		ops      = 200_000
	)
	s := newSpaceSaving[string](capacity)
	truth := map[string]uint64{}
	add := func(k string) {
		truth[k]++
		s.add(k, 1)
	}
	for i := 0; i < ops/2; i++ {
		add(fmt.Sprintf("k%d", i))
	}
	for i := 0; i < ops/2; i++ {
		if i%5 == 0 {
			add("hot")
		} else {
			add(fmt.Sprintf("late%d", i))
		}
	}
	top := s.top()
	if len(top) != capacity || top[0].key != "hot" || top[0].lower != truth["hot"] {
		t.Fatalf("top %v…: want hot first with its true count %d", top[:min(3, len(top))], truth["hot"])
	}
	for _, c := range top {
		if n := truth[c.key]; n < c.lower || n > c.lower+c.err {
			t.Errorf("%s: true count %d outside [%d, %d]", c.key, n, c.lower, c.lower+c.err)
		}
		if c.err > ops/capacity {
			t.Errorf("%s: error %d above total/capacity", c.key, c.err)
		}
	}
	if s.total != ops {
		t.Errorf("total %d, want %d", s.total, ops)
	}
}

// TestKeyHasher: a key hashes the same under one hasher, differently under
// another, and not as a plain SHA-256 would.
func TestKeyHasher(t *testing.T) {
	a, b := NewKeyHasher(), NewKeyHasher()
	h := a.Hash("alice@example.com")
	if h != a.Hash("alice@example.com") {
		t.Errorf("one hasher, two hashes of one key")
	}
	if len(h) != 14 || h[:2] != "h:" {
		t.Errorf("hash %q: want h: and 12 hex digits", h)
	}
	if h == b.Hash("alice@example.com") {
		t.Errorf("two traces hash a key the same: %s", h)
	}
	if h == a.Hash("bob@example.com") {
		t.Errorf("two keys, one hash")
	}
	if h == "h:ff8d9819fc0e" { // the first 6 bytes of its plain SHA-256
		t.Errorf("a plain hash")
	}
}
