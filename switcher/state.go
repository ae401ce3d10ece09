package switcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/swap-dev/swap/deployments"
)

// State is what swap remembers of an app, at StateKey(app).
type State struct {
	App  string            `json:"app"`
	Live deployments.Color `json:"live,omitempty"` // "" before the first swap
	// Colors holds the image and deploy of each color that has instances.
	Colors map[deployments.Color]ColorState `json:"colors,omitempty"`
	// Previous lists images that were live before, newest first, by reference and ID:
	// rollback targets and what cleanup keeps `retain` of. (Older states recorded bare
	// references; they read as an Image without ID.)
	Previous []Image `json:"previous,omitempty"`
	// Failed lists the images of deploys that were rolled back, by ID: never live, so
	// no rollback target. The next cleanup removes them — unless a container uses one,
	// or it is live or a rollback target by then (a retried deploy of that very image).
	Failed  []Image  `json:"failed,omitempty"`
	History []Record `json:"history,omitempty"` // newest last, at most maxHistory
}

// ColorState is one color's running version.
type ColorState struct {
	Image string `json:"image"`
	// ImageID and Digest are the image Image named when the color started (see Image).
	ImageID string    `json:"image_id,omitempty"`
	Digest  string    `json:"digest,omitempty"`
	Deploy  string    `json:"deploy"`
	Since   time.Time `json:"since"`
	// RetireAt is set on the color a swap drained but kept up for scale_down_delay:
	// until then `swap rollback` flips back to it; after, it is removed (by the swap
	// that waits for it, or by the next operation on the app if that swap is gone).
	RetireAt time.Time `json:"retire_at,omitzero"`
	// RetiredBy is the deploy that drained the color, the one that may retire it.
	RetiredBy string `json:"retired_by,omitempty"`
}

// Retiring reports whether the color waits for its retire.
func (c ColorState) Retiring() bool { return c.RetiredBy != "" }

// Record is one finished (or failed) swap in an app's history.
type Record struct {
	Deploy   string            `json:"deploy"`
	Op       string            `json:"op"`
	From     deployments.Color `json:"from,omitempty"`
	To       deployments.Color `json:"to"`
	Image    string            `json:"image"`
	ImageID  string            `json:"image_id,omitempty"`
	Started  time.Time         `json:"started"`
	Finished time.Time         `json:"finished"`
	Result   string            `json:"result"` // done, rolled back, failed
	Error    string            `json:"error,omitempty"`
	Steps    []StepTime        `json:"steps,omitempty"`
}

// StepTime is how long one step took.
type StepTime struct {
	Step     Step          `json:"step"`
	Duration time.Duration `json:"duration"`
}

const maxHistory = 50

// Journal is the swap in flight, at JournalKey(app): written before and after each step
// so that resume knows where a crashed swap stopped.
type Journal struct {
	Plan   Plan       `json:"plan"`
	Step   Step       `json:"step"`
	Done   bool       `json:"done"`   // Step finished
	Status string     `json:"status"` // running, waiting (preview, for promote)
	Steps  []StepTime `json:"steps,omitempty"`
	// Shifted is set once the routes point at the new color.
	Shifted bool `json:"shifted,omitempty"`
	// RetireAt is when From is retired, when the retire step deferred it
	// (scale_down_delay): commit records it in From's ColorState.
	RetireAt time.Time `json:"retire_at,omitzero"`
	// Hosts are the instances of To the start step started, by Docker host
	// (docker.hosts[].name), when the app runs on several: what `swap resume` and
	// `swap status` show of a swap that stopped half way.
	Hosts map[string][]string `json:"hosts,omitempty"`
}

// Journal statuses.
const (
	JournalRunning = "running"
	JournalWaiting = "waiting"
)

// StateKey and JournalKey are the KV keys, relative to the configured prefix.
func StateKey(app string) string   { return "apps/" + app + "/state" }
func JournalKey(app string) string { return "apps/" + app + "/journal" }

// ErrStale is what a Store returns when a check-and-set lost to another writer.
var ErrStale = errors.New("stale write")

// kv wraps the Store with JSON encoding and index tracking.
type kv struct {
	store Store
}

func (k kv) load(ctx context.Context, key string, v any) (uint64, bool, error) {
	b, idx, err := k.store.Get(ctx, key)
	if err != nil {
		return 0, false, fmt.Errorf("read %s: %w", key, err)
	}
	if b == nil {
		return 0, false, nil
	}
	if err := json.Unmarshal(b, v); err != nil {
		return 0, false, fmt.Errorf("read %s: corrupt JSON: %w (inspect it with `consul kv get`)", key, err)
	}
	return idx, true, nil
}

func (k kv) save(ctx context.Context, key string, v any, idx uint64) (uint64, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return 0, err
	}
	n, err := k.store.CAS(ctx, key, b, idx)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", key, err)
	}
	return n, nil
}

// storedState is a State as read from the store, with the index to write it back with.
type storedState struct {
	State
	index uint64
}

func (k kv) state(ctx context.Context, app string) (*storedState, error) {
	s := &storedState{State: State{App: app}}
	idx, _, err := k.load(ctx, StateKey(app), &s.State)
	if err != nil {
		return nil, err
	}
	s.index = idx
	if s.Colors == nil {
		s.Colors = map[deployments.Color]ColorState{}
	}
	return s, nil
}

func (k kv) saveState(ctx context.Context, s *storedState) error {
	idx, err := k.save(ctx, StateKey(s.App), s.State, s.index)
	if err != nil {
		return err
	}
	s.index = idx
	return nil
}

// storedJournal is a Journal as read from the store, with its index.
type storedJournal struct {
	Journal
	index uint64
}

func (k kv) journal(ctx context.Context, app string) (*storedJournal, bool, error) {
	j := &storedJournal{}
	idx, ok, err := k.load(ctx, JournalKey(app), &j.Journal)
	if err != nil || !ok {
		return nil, false, err
	}
	j.index = idx
	return j, true, nil
}

func (k kv) saveJournal(ctx context.Context, j *storedJournal) error {
	idx, err := k.save(ctx, JournalKey(j.Plan.App), j.Journal, j.index)
	if err != nil {
		return err
	}
	j.index = idx
	return nil
}

// dropJournal deletes j's key while it still holds the version this swap wrote
// (check-and-set): a swap that lost its lock never deletes its successor's journal.
func (k kv) dropJournal(ctx context.Context, j *storedJournal) error {
	key := JournalKey(j.Plan.App)
	if j.index == 0 {
		return nil // never written
	}
	if err := k.store.Delete(ctx, key, j.index); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}

// addHistory appends r, keeping the last maxHistory records. A record of the deploy
// already last in the history replaces it: a repair that re-runs commit (or a rollback's
// finish) after a crash between the state write and the journal delete records once.
func (s *State) addHistory(r Record) {
	if n := len(s.History); n > 0 && r.Deploy != "" && s.History[n-1].Deploy == r.Deploy {
		s.History[n-1] = r
		return
	}
	s.History = append(s.History, r)
	if n := len(s.History); n > maxHistory {
		s.History = append([]Record(nil), s.History[n-maxHistory:]...)
	}
}

// pushPrevious records img as the newest previously live image. An earlier record of
// the same image (same ID, or same reference when an ID is unknown) is dropped; the same
// reference with another ID is another image and is kept.
func (s *State) pushPrevious(img Image) {
	if img.Ref == "" && img.ID == "" {
		return
	}
	out := []Image{img}
	for _, p := range s.Previous {
		if !p.Same(img) {
			out = append(out, p)
		}
	}
	if len(out) > maxHistory {
		out = out[:maxHistory]
	}
	s.Previous = out
}

// pushFailed records img, the image of a deploy rolled back, for the next cleanup:
// only by ID (cleanup removes by ID), and not when the state keeps it (a color runs
// it, or it is a rollback target) or records it already.
func (s *State) pushFailed(img Image) {
	if img.ID == "" || s.keeps(img) || slices.ContainsFunc(s.Failed, img.Same) {
		return
	}
	s.Failed = append(s.Failed, img)
	if len(s.Failed) > maxHistory {
		s.Failed = s.Failed[len(s.Failed)-maxHistory:]
	}
}

// keeps reports whether img is an image the state needs: a color's (live, or kept up
// for scale_down_delay) or a rollback target.
func (s *State) keeps(img Image) bool {
	for _, cs := range s.Colors {
		if cs.image().Same(img) {
			return true
		}
	}
	return slices.ContainsFunc(s.Previous, img.Same)
}

// unkeptFailed is Failed without the images the state keeps (keeps): what a cleanup
// may remove.
func (s *State) unkeptFailed() []Image {
	return slices.DeleteFunc(slices.Clone(s.Failed), s.keeps)
}

// image is the color's image.
func (c ColorState) image() Image { return Image{Ref: c.Image, ID: c.ImageID, Digest: c.Digest} }
