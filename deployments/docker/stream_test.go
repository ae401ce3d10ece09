package docker

import (
	"strings"
	"testing"
)

// The engine reports a failed pull, import or build inside its JSON message stream.
func TestReadStream_ErrorsInTheStreamAndStatuses(t *testing.T) {
	var seen []string
	err := ReadStream(strings.NewReader(`{"status":"Pulling from x","id":"v2"}
{"status":"Downloading","id":"abc"}
{"status":"Digest: sha256:00"}
{"stream":"Step 1/2 : FROM scratch\n"}
`), func(id, status string) { seen = append(seen, id+"|"+status) })
	if err != nil {
		t.Fatal(err)
	}
	if want := "v2|Pulling from x,abc|Downloading,|Digest: sha256:00,|Step 1/2 : FROM scratch\n"; strings.Join(seen, ",") != want {
		t.Fatalf("statuses %q, want %q", seen, want)
	}
	for stream, want := range map[string]string{
		`{"status":"x"}{"error":"no space left on device"}`:           "no space left on device",
		`{"errorDetail":{"message":"manifest unknown"}}`:              "manifest unknown",
		`{"status":"x"}{"stat`:                                        "read the engine's answer",
		`{"error":"first","errorDetail":{"message":"second"}}{"x":1}`: "first",
	} {
		err := ReadStream(strings.NewReader(stream), nil)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("stream %s: error %v, want one containing %q", stream, err, want)
		}
	}
}
