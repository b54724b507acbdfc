package agent

import (
	"bytes"
	"strings"
	"testing"
)

func TestPatterns(t *testing.T) {
	api := &Process{Exe: "/srv/bin/api-gateway", Module: "example.com/shop/gateway", ContainerID: id1}
	k8s := &Process{Exe: "/app", Namespace: "shop", Pod: "gateway-7d9f"}
	plain := &Process{Exe: "/usr/bin/sleep"}
	for _, tc := range []struct {
		pattern string
		p       *Process
		want    bool
	}{
		{"api-gateway", api, true},
		{"api-*", api, true},
		{"api", api, false},
		{"/srv/bin/*", api, true},
		{"/srv/*", api, false}, // * stops at /
		{"example.com/shop/gateway", api, true},
		{"example.com/shop/*", api, true},
		{"example.com/*", api, false},
		{id1, api, true},
		{id1[:12], api, true},
		{id1[:11], api, false}, // too short a prefix to be an ID
		{id2, api, false},
		{"sleep", plain, true},
		{"shop/gateway-*", k8s, true},
		{"shop/*", k8s, true},
		{"shop/gateway-*", api, false}, // no pod known
		{"*", plain, true},
	} {
		ps, err := ParsePatterns([]string{tc.pattern})
		if err != nil {
			t.Fatalf("%q: %v", tc.pattern, err)
		}
		if got := ps[0].Match(tc.p); got != tc.want {
			t.Errorf("%q matches %+v: %v, want %v", tc.pattern, *tc.p, got, tc.want)
		}
	}
	for _, bad := range []string{"", "[", "api-[a"} {
		if _, err := ParsePatterns([]string{"ok", bad}); err == nil {
			t.Errorf("ParsePatterns accepts %q", bad)
		}
	}
}

func TestWriteSurvey(t *testing.T) {
	var b bytes.Buffer
	err := WriteSurvey(&b, []SurveyRow{
		{Process: Process{PID: 812, Exe: "/usr/bin/api", GoVersion: "go1.26.8", Module: "example.com/api", ContainerID: id1,
			Namespace: "shop", Pod: "web-0", Container: "api"},
			Trace: true, Reason: "matches --match api"},
		{Process: Process{PID: 4242, Exe: "/usr/bin/sleep"}, Reason: "not a Go program"},
	})
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d lines:\n%s", len(lines), b.String())
	}
	for i, want := range [][]string{
		{"PID", "TRACE", "GO", "EXE", "MODULE", "CONTAINER", "POD", "WHY"},
		{"812", "yes", "go1.26.8", "/usr/bin/api", "example.com/api", id1[:12], "shop/web-0", "matches", "--match", "api"},
		{"4242", "no", "-", "/usr/bin/sleep", "-", "-", "-", "not", "a", "Go", "program"},
	} {
		if got := strings.Fields(lines[i]); strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("line %d: %q, want the fields %q", i, lines[i], want)
		}
	}
}

func TestLog(t *testing.T) {
	var b bytes.Buffer
	l := &lineLog{w: &b}
	w1 := l.prefixed("pid 1 (api)", "/usr/bin/api")
	w2 := l.prefixed("pid 2 (api)", "/usr/bin/api")
	w3 := l.prefixed("pid 3 (db)", "/usr/bin/db")
	note := "maptrace: note: sync.runtime_SemacquireRWMutexR (RWMutex read waits): not in this binary, so not traced\n"
	w1.Write([]byte(note))
	w2.Write([]byte(note)) // the same executable: said already
	w3.Write([]byte(note))
	w2.Write([]byte("maptrace: 3 lost events\n"))
	want := "maptrace: pid 1 (api): note: sync.runtime_SemacquireRWMutexR (RWMutex read waits): not in this binary, so not traced\n" +
		"maptrace: pid 3 (db): note: sync.runtime_SemacquireRWMutexR (RWMutex read waits): not in this binary, so not traced\n" +
		"maptrace: pid 2 (api): 3 lost events\n"
	if b.String() != want {
		t.Errorf("log:\n%s\nwant:\n%s", b.String(), want)
	}
}

// TestService: a Kubernetes container's name, else the executable's.
func TestService(t *testing.T) {
	for _, tc := range []struct {
		p    Process
		want string
	}{
		{Process{Exe: "/usr/local/bin/server"}, "server"},
		{Process{Exe: "/app", ContainerID: id1}, "app"},
		{Process{Exe: "/app", ContainerID: id1, Namespace: "shop", Pod: "api-7d9f-x2", Container: "api"}, "api"},
	} {
		if got := tc.p.Service(); got != tc.want {
			t.Errorf("%+v: service %q, want %q", tc.p, got, tc.want)
		}
	}
}
