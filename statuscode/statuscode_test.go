package statuscode

import (
	"encoding/json"
	"testing"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]string{"200-399": "200-399", "200,204": "200,204", "200-299,404": "200-299,404", "599": "599"} {
		l, err := Parse(in)
		if err != nil || l.String() != want {
			t.Errorf("Parse(%q) = %v, %v; want %s", in, l, err, want)
		}
	}
	for _, in := range []string{"", "200, 204", "399-200", "2xx", "600", "099", "+200", "200-", ",200", "200-399,", "0200", "20 0"} {
		if l, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) = %v, want an error", in, l)
		}
	}
}

func TestList_IsAStringInJSON(t *testing.T) {
	var v struct{ Expect List }
	if err := json.Unmarshal([]byte(`{"Expect":"200-299,404"}`), &v); err != nil || v.Expect.String() != "200-299,404" {
		t.Fatalf("unmarshal: %v %v", v.Expect, err)
	}
	b, err := json.Marshal(v)
	if err != nil || string(b) != `{"Expect":"200-299,404"}` {
		t.Fatalf("marshal: %s %v", b, err)
	}
	if err := json.Unmarshal([]byte(`{"Expect":"2xx"}`), &v); err == nil {
		t.Fatal("2xx accepted")
	}
}

func TestMatch(t *testing.T) {
	l, _ := Parse("200-299,404")
	for code, want := range map[int]bool{200: true, 299: true, 300: false, 404: true, 503: false} {
		if l.Match(code) != want {
			t.Errorf("Match(%d) = %v", code, !want)
		}
	}
	if !Default.Match(302) || Default.Match(404) {
		t.Error("Default is not 2xx and 3xx")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"200", "200-399,404", "1", "999-100"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l, err := Parse(s)
		if err != nil {
			return
		}
		// What Parse accepts it writes back the same, and every range is real.
		if l.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, l.String())
		}
		for _, r := range l {
			if !r.Valid() {
				t.Fatalf("Parse(%q) accepted %v", s, r)
			}
		}
	})
}
