package lbconfig

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestHostileValuesNeverRunASecondCommandOrHang sends values built to break out of their
// word (';', newline, spaces, tabs, backslashes, a trailing "<<") to real HAProxy, and
// checks that each arrives as one literal word, that the command they ride in is the
// only one that runs, and that no call hangs.
func TestHostileValuesNeverRunASecondCommandOrHang(t *testing.T) {
	env := richState(t)
	c := env.c
	routes := env.layout.RoutesMap()
	victim := "set server app_blue/app-blue-0 state maint"

	untouched := func(t *testing.T) {
		t.Helper()
		if ss := serverState(t, c, "app_blue", "app-blue-0"); ss.AdminState != 0 {
			t.Fatalf("a second command ran: app-blue-0 admin state %#x", ss.AdminState)
		}
	}

	t.Run("control: the same values sent raw do inject", func(t *testing.T) {
		if _, err := env.h.Exec("set map " + routes + " app.test app_blue;" + victim); err != nil {
			t.Fatal(err)
		}
		if ss := serverState(t, c, "app_blue", "app-blue-0"); !ss.AdminState.Maint() {
			t.Fatal("the raw injection did not run: this test could not see one")
		}
		must(t, c.setState(context.Background(), "app_blue", "app-blue-0", StateReady))
		untouched(t)
	})

	values := []struct{ name, value string }{
		{"a semicolon and a second command", "app_green;" + victim},
		{"a trailing <<", "x<<"},
		{"a lone <<", "<<"},
		{"a trailing << after a space", "x <<"},
		{"spaces", "a b  c"},
		{"tabs", "a\tb"},
		{"a trailing backslash", `x\`},
		{"a backslash before a semicolon", `x\;` + victim},
		{"escapes already in it", `a\ b\;c`},
		{"only a semicolon", ";"},
	}
	for _, v := range values {
		t.Run("a value with "+v.name+" is one literal word", func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			cmd, err := NewCommand("set", "map", routes, "app.test", v.value)
			must(t, err)
			if _, err := c.Exec(ctx, cmd); err != nil {
				t.Fatalf("%v (a deadline here means HAProxy waited for a payload)", err)
			}
			got, ok, err := c.GetMap(ctx, routes, "app.test")
			if err != nil || !ok || got != v.value {
				t.Fatalf("the map holds %q (%v %v), want %q", got, ok, err, v.value)
			}
			untouched(t)
			// The same as a key.
			cmd, err = NewCommand("add", "map", routes, v.value, "app_blue")
			must(t, err)
			if _, err := c.Exec(ctx, cmd); err != nil {
				t.Fatal(err)
			}
			cmd, err = NewCommand("del", "map", routes, v.value)
			must(t, err)
			if _, err := c.Exec(ctx, cmd); err != nil {
				t.Fatalf("the hostile key was not found again: %v", err)
			}
			untouched(t)
		})
	}

	t.Run("a newline, CR or NUL is refused before anything is sent", func(t *testing.T) {
		ctx := context.Background()
		for _, v := range []string{"x\n" + victim, "x\r\n" + victim, "x\x00" + victim, "x\n"} {
			if _, err := NewCommand("set", "map", routes, "app.test", v); !errors.Is(err, ErrUnsafeArgument) {
				t.Fatalf("%q: %v", v, err)
			}
			if err := c.setMap(ctx, routes, "app.test", v); err == nil {
				t.Fatalf("SetMap took %q", v)
			}
		}
		untouched(t)
	})

	t.Run("hostile names are refused by every typed operation", func(t *testing.T) {
		ctx := context.Background()
		bad := []string{"app-blue-1;" + victim, "app-blue-1 x", "app-blue-1\n", "app-blue-1<<", "a/b", ""}
		for _, name := range bad {
			for _, err := range []error{
				c.setState(ctx, "app_blue", name, StateMaint),
				c.setState(ctx, name, "app-blue-1", StateMaint),
				c.setWeight(ctx, "app_blue", name, 0),
				c.setHealth(ctx, "app_blue", name, HealthDown),
				c.disableHealth(ctx, "app_blue", name),
				c.ShutdownSessions(ctx, "app_blue", name),
				c.delServer(ctx, "app_blue", name),
				c.AddServer(ctx, "app_blue", Server{Name: name, Addr: "127.0.0.1", Port: 1}),
				func() error {
					if name == "" {
						return ErrInvalidName // "" means every backend here
					}
					_, err := c.Stat(ctx, name)
					return err
				}(),
			} {
				if !errors.Is(err, ErrInvalidName) {
					t.Fatalf("name %q: %v, want ErrInvalidName", name, err)
				}
			}
		}
		if ss := serverState(t, c, "app_blue", "app-blue-1"); ss.AdminState.Maint() {
			t.Fatal("app-blue-1 went to maint")
		}
		untouched(t)
	})

	t.Run("map entries that would break the map file are refused", func(t *testing.T) {
		ctx := context.Background()
		for _, kv := range [][2]string{{"a b", "x"}, {"k", "a b"}, {"#k", "x"}, {"k", ""}, {"k", "x\ty"}} {
			if err := c.addMap(ctx, routes, kv[0], kv[1]); !errors.Is(err, ErrMapEntryInvalid) {
				t.Fatalf("%q: %v", kv, err)
			}
		}
	})
}
