package report

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// schemaPath is the report's JSON Schema, which docs/report.md explains.
const schemaPath = "../../docs/report.schema.json"

var (
	schemaOnce sync.Once
	schema     *jsonschema.Schema
	schemaErr  error
)

// compiled is the schema with format assertions on (date-time is checked).
func compiled(t *testing.T) *jsonschema.Schema {
	t.Helper()
	schemaOnce.Do(func() {
		c := jsonschema.NewCompiler()
		c.AssertFormat()
		schema, schemaErr = c.Compile(schemaPath)
	})
	if schemaErr != nil {
		t.Fatalf("compile %s: %v", schemaPath, schemaErr)
	}
	return schema
}

// encode writes r with WriteJSON and decodes it as the validator wants it.
func encode(t *testing.T, r *Report) (string, any) {
	t.Helper()
	var b bytes.Buffer
	if err := WriteJSON(&b, r); err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	return b.String(), doc
}

func validate(t *testing.T, doc any, text string) {
	t.Helper()
	if err := compiled(t).Validate(doc); err != nil {
		t.Errorf("invalid report: %#v\n%s", err, text) // %#v: every failed keyword, not only the first line
	}
}

// TestSchemaEmptyReport: a trace that saw nothing writes [] for every list,
// never null, and validates.
func TestSchemaEmptyReport(t *testing.T) {
	r := &Report{
		Version: Version,
		Target:  Target{PID: 42, Exe: "/bin/server", GoVersion: "go1.26.8", Arch: "amd64"},
		EndedBy: EndedByDuration,
	}
	text, doc := encode(t, r)
	if strings.Contains(text, "null") {
		t.Errorf("null in an empty report:\n%s", text)
	}
	validate(t, doc, text)
}

// fullReport has every field of the report set, and nil nested lists where
// WriteJSON must write [].
func fullReport() *Report {
	start := time.Date(2026, 12, 2, 17, 19, 0, 123456789, time.UTC)
	stack := []string{"main.lockMutex (/src/main.go:12)", "main.main (/src/main.go:40)"}
	return &Report{
		Version: Version,
		Target:  Target{PID: 1234, Exe: "/srv/bin/server", GoVersion: "go1.26.8", Arch: "amd64", Module: "example.com/server", CPUs: 2},
		Window:  Window{Start: start, End: start.Add(12500 * time.Millisecond), Seconds: 12.5},
		EndedBy: EndedByTargetExit,
		Overhead: Overhead{ProbeHits: 5078, EstCostSeconds: 0.027, MapSamplingFraction: 0.725, MapCountsLowerBound: true, MapCountsLowerBoundWhy: "slowed",
			HitCostNS: 5330, HitCostFactor: 1.3, MapHitCostNS: 5400, MutexHitCostNS: 6800, OwnCPUSeconds: 0.2, OwnChargedSeconds: 0.01, SamplerSeconds: 0.05, SampleCostNS: 25000, SampleProgramNS: 1200, Ratio: 0.098, MutexRatio: 0.02,
			MutexBudget: 0.0375, MutexCountsScaled: true, MutexSamplingFraction: 0.4, Budget: 0.05, LostEvents: 1},
		Mutexes: []Mutex{
			{Address: "0x5a0000", Name: "main.mu", Kind: KindMutex, Contentions: 197, WaitNS: 1_220_000_000,
				MaxWaitNS: 18_730_000, Goroutines: 3, P50NS: 6_700_000, P99NS: 18_730_000,
				Waiters:   []Waiter{{Stack: stack, Contentions: 197, WaitNS: 1_220_000_000}},
				Holders:   []Holder{{Stack: stack, Count: 190}},
				Histogram: []uint64{0, 0, 3, 5}},
			{Address: "0xc000012345", Kind: KindRWMutexRead}, // no waiters or holders recorded: nil lists
		},
		Maps: []Map{
			{Address: "0xc000abcdef", Name: "main.inventory", Kind: KindMap, Maps: 1, Type: "map[int64]int",
				KeyType: "int64", Reads: 1731, Writes: 152, Deletes: 3,
				Iterations: 2, Goroutines: 4, Writers: 2, InterleavedWrites: 4, CPUSeconds: 0.31,
				Interleave: &Interleave{Count: 4, Sides: []RaceSide{{Goid: 27, Op: OpWrite, Stack: stack}, {Goid: 26, Op: OpWrite}}},
				HotKeys:    []HotKey{{Key: "region", Count: 800}, {Key: "other", Count: 931}},
				Sites:      []Site{{Stack: stack, Op: OpRead, Count: 1731}, {Op: OpWrite, Count: 152}}}, // a site without a stack
			{Kind: KindMap, Class: "net/textproto.readMIMEHeader", Maps: 2871, Type: "http.Header", KeyType: "other"},
			{Address: "0x5a1000", Name: "main.cache", Kind: KindSyncMap, Maps: 1, Type: "sync.Map", KeyType: "string",
				Reads: 900, Writes: 12, SyncMap: &SyncMapStats{Misses: 40, Promotions: 3, DirtyCopies: 3}},
			{Kind: KindSharded, Class: "main.(*shards).set", Maps: 2, Type: "map[string]int", KeyType: "string",
				Reads: 700, Writes: 300, HotKeys: []HotKey{{Key: "hot", Count: 500}, {Key: "other", Count: 500}},
				Sharded: &Sharded{Imbalance: 1.6, HotKey: "hot", Shards: []Shard{
					{Address: "0xc000100000", Ops: 800, Mutex: "0xc000200008", Contentions: 30, WaitNS: 9000000},
					{Address: "0xc000100100", Ops: 200}}}},
			{Kind: KindMap, Class: "main.buildConfig", Maps: 40, Type: "map[string]string", KeyType: "string", Reads: 800, Writes: 2000,
				Snapshots: &Snapshots{Published: 40, Entries: 2000}},
		},
		Races: []Race{{Map: "0xc000abcdef", Name: "main.inventory", MapID: "main.inventory", Kind: "write/write", Count: 1,
			Sides: []RaceSide{{Goid: 27, Op: OpWrite, Stack: stack}, {Goid: 26, Op: OpWrite}}}}, // the other side's stack unknown
		Findings: []Finding{{Severity: SeverityCritical, Class: ClassCorrectness, Title: "concurrent map writes on main.inventory",
			Detail: "goroutines 26 and 27 wrote it at once", Advice: "guard it with a mutex", CostSeconds: 0, BelowThreshold: false}},
		CPU: CPU{Hz: 499, Samples: 4990, Seconds: 10, MapSamples: 155, MapSeconds: 0.31,
			Sites: []CPUSite{{Frame: "main.sell (workload.go:228)", Samples: 155, Seconds: 0.31}}},
		Goroutines:  []Goroutine{{Goid: 27, Contentions: 5, WaitNS: 1e6, MapOps: 100, HotKeys: []HotKey{{Key: "region", Count: 40}}}},
		Missing:     []string{"runtime.mapaccess1_fat"},
		TargetError: "concurrent map writes",
		TargetCrash: "fatal error",
		TargetStack: []string{"runtime.fatal (/go/src/runtime/panic.go:1046)", "main.restock (/src/orders.go:61)"},
	}
}

// addNewFields sets, on a decoded report, the fields being added to the
// report that report.go does not have yet (the schema has them as
// optional); those it has are left as WriteJSON wrote them.
func addNewFields(doc any) {
	top := doc.(map[string]any)
	f := top["findings"].([]any)[0].(map[string]any)
	setIfAbsent(f, "cost_seconds", json.Number("1.42"))
	setIfAbsent(f, "below_threshold", false)
	m := top["maps"].([]any)[0].(map[string]any)
	setIfAbsent(m, "kind", "map")
	setIfAbsent(m, "class", "")
	setIfAbsent(m, "maps", json.Number("1"))
	setIfAbsent(m, "type", "map[int64]int")
	setIfAbsent(m, "cpu_seconds", json.Number("0.31"))
	setIfAbsent(m, "interleaved_writes", json.Number("4"))
	setIfAbsent(top, "cpu", map[string]any{
		"sample_hz": json.Number("499"), "samples": json.Number("4990"), "seconds": json.Number("10"),
		"map_samples": json.Number("155"), "map_seconds": json.Number("0.31"),
		"map_sites": []any{map[string]any{"frame": "main.sell (workload.go:228)", "samples": json.Number("155"), "seconds": json.Number("0.31")}},
	})
}

func setIfAbsent(m map[string]any, k string, v any) {
	if _, ok := m[k]; !ok {
		m[k] = v
	}
}

// TestSchemaFullReport validates a report with every field, the new ones
// included, and checks it does use every property the schema has, so that
// the schema cannot gain a field this test does not exercise.
func TestSchemaFullReport(t *testing.T) {
	r := fullReport()
	text, doc := encode(t, r)
	if strings.Contains(text, "null") {
		t.Errorf("null in the report:\n%s", text)
	}
	validate(t, doc, text)
	addNewFields(doc)
	validate(t, doc, "(with the new fields)")

	var root map[string]any
	if err := json.Unmarshal(mustRead(t), &root); err != nil {
		t.Fatal(err)
	}
	for _, p := range unused(root, root, doc, "") {
		t.Errorf("the full report has no %s: set it in fullReport or addNewFields", p)
	}

	// WriteJSON filled in nested lists on a copy, not on r.
	if r.Mutexes[1].Waiters != nil || r.Races[0].Sides[1].Stack != nil || r.Maps[0].Sites[1].Stack != nil {
		t.Error("WriteJSON changed the caller's report")
	}
}

// TestSchemaCoversReport checks that every JSON field of the Go types is in
// the schema: a field added to report.go must be documented there too (and
// in docs/report.md).
func TestSchemaCoversReport(t *testing.T) {
	var root map[string]any
	if err := json.Unmarshal(mustRead(t), &root); err != nil {
		t.Fatal(err)
	}
	for _, p := range undocumented(root, root, reflect.TypeFor[Report](), "") {
		t.Errorf("%s is not in %s", p, schemaPath)
	}
}

// TestSchemaRejects makes sure the schema is strict where the contract is.
func TestSchemaRejects(t *testing.T) {
	_, good := encode(t, fullReport())
	b, err := json.Marshal(good)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		change func(top map[string]any)
	}{
		{"null list", func(top map[string]any) { top["mutexes"] = nil }},
		{"null nested list", func(top map[string]any) { item(top, "mutexes")["waiters"] = nil }},
		{"null stack", func(top map[string]any) { item(top, "races")["sides"].([]any)[1].(map[string]any)["stack"] = nil }},
		{"missing required field", func(top map[string]any) { delete(top, "overhead") }},
		{"missing nested field", func(top map[string]any) { delete(item(top, "maps"), "hot_keys") }},
		{"unknown field", func(top map[string]any) { top["extra"] = 1 }},
		{"unknown mutex kind", func(top map[string]any) { item(top, "mutexes")["kind"] = "spinlock" }},
		{"negative count", func(top map[string]any) { item(top, "maps")["reads"] = json.Number("-1") }},
		{"bad time", func(top map[string]any) { top["window"].(map[string]any)["start"] = "yesterday" }},
		{"other version", func(top map[string]any) { top["version"] = json.Number("2") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			tc.change(doc.(map[string]any))
			if compiled(t).Validate(doc) == nil {
				t.Error("the schema accepts it")
			}
		})
	}
}

func item(top map[string]any, list string) map[string]any {
	return top[list].([]any)[0].(map[string]any)
}

func mustRead(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// resolve follows a local $ref ("#/$defs/name").
func resolve(root, node map[string]any) map[string]any {
	for {
		ref, ok := node["$ref"].(string)
		if !ok {
			return node
		}
		def, _ := root["$defs"].(map[string]any)[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if def == nil {
			return node
		}
		node = def
	}
}

// unused lists the schema properties the document does not have; in a list
// only the first element is looked into.
func unused(root, node map[string]any, doc any, path string) []string {
	node = resolve(root, node)
	var out []string
	switch v := doc.(type) {
	case map[string]any:
		props, _ := node["properties"].(map[string]any)
		for _, k := range sortedKeys(props) {
			sub, ok := v[k]
			if !ok {
				out = append(out, path+"."+k)
				continue
			}
			out = append(out, unused(root, props[k].(map[string]any), sub, path+"."+k)...)
		}
	case []any:
		items, ok := node["items"].(map[string]any)
		if !ok {
			break
		}
		if len(v) == 0 {
			if len(resolve(root, items)) > 0 && resolve(root, items)["properties"] != nil {
				out = append(out, path+"[] (empty)")
			}
			break
		}
		// A property is used if any item has it (a sync.Map row has fields
		// a map row lacks).
		missing := map[string]int{}
		for _, item := range v {
			for _, p := range unused(root, items, item, path+"[]") {
				if missing[p]++; missing[p] == len(v) {
					out = append(out, p)
				}
			}
		}
	}
	return out
}

// undocumented lists the JSON fields of t that the schema node lacks.
func undocumented(root, node map[string]any, t reflect.Type, path string) []string {
	node = resolve(root, node)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	switch {
	case t == reflect.TypeFor[time.Time]():
	case t.Kind() == reflect.Struct:
		props, _ := node["properties"].(map[string]any)
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			sub, ok := props[name].(map[string]any)
			if !ok {
				out = append(out, path+"."+name+" ("+t.Name()+"."+f.Name+")")
				continue
			}
			out = append(out, undocumented(root, sub, f.Type, path+"."+name)...)
		}
	case t.Kind() == reflect.Slice:
		if items, ok := node["items"].(map[string]any); ok {
			out = append(out, undocumented(root, items, t.Elem(), path+"[]")...)
		}
	}
	return out
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// TestDocsNameEveryField checks that docs/report.md names every property of
// the schema.
func TestDocsNameEveryField(t *testing.T) {
	b, err := os.ReadFile("../../docs/report.md")
	if err != nil {
		t.Fatal(err)
	}
	var root map[string]any
	if err := json.Unmarshal(mustRead(t), &root); err != nil {
		t.Fatal(err)
	}
	names := map[string]any{}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if props, ok := v["properties"].(map[string]any); ok {
				for k := range props {
					names[k] = nil
				}
			}
			for _, sub := range v {
				walk(sub)
			}
		case []any:
			for _, sub := range v {
				walk(sub)
			}
		}
	}
	walk(root)
	for _, k := range sortedKeys(names) {
		if !strings.Contains(string(b), "`"+k+"`") {
			t.Errorf("docs/report.md does not name %s", k)
		}
	}
}
