package lbconfig

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// checkMapEntry checks a key or value for swap's maps: non-empty, no whitespace or control
// characters (the map file is whitespace-separated and `show map` prints raw text), and
// a key does not start with '#' (a comment in the map file).
func checkMapEntry(key, value string) error {
	for _, s := range []string{key, value} {
		if s == "" {
			return fmt.Errorf("map entry %q %q: empty: %w", key, value, ErrMapEntryInvalid)
		}
		for i := 0; i < len(s); i++ {
			if c := s[i]; c <= ' ' || c == 0x7f {
				return fmt.Errorf("map entry %q %q: byte %q: %w", key, value, c, ErrMapEntryInvalid)
			}
		}
	}
	if key[0] == '#' {
		return fmt.Errorf("map key %q starts with '#': %w", key, ErrMapEntryInvalid)
	}
	return nil
}

func checkMapFile(file string) error {
	if err := checkArg(file); err != nil {
		return fmt.Errorf("map %q: %w", file, err)
	}
	return nil
}

// ShowMap returns a map's entries (`show map <file>`); file is the map's path exactly as
// haproxy.cfg writes it.
func (c *Client) ShowMap(ctx context.Context, file string) ([]MapEntry, error) {
	if err := checkMapFile(file); err != nil {
		return nil, err
	}
	out, err := c.Exec(ctx, mustCommand(okAny, "show", "map", file))
	return parsed(c, out, err, parseShowMap)
}

// GetMap returns the value of key in the map, matched exactly (not by the map's match
// method, as `get map` would), and whether it is there.
func (c *Client) GetMap(ctx context.Context, file, key string) (string, bool, error) {
	entries, err := c.ShowMap(ctx, file)
	if err != nil {
		return "", false, err
	}
	for _, e := range entries {
		if e.Key == key {
			return e.Value, true, nil
		}
	}
	return "", false, nil
}

// setMapCmd is `set map <file> <key> <value>`: it changes an existing entry
// (ErrMapKeyNotFound if there is none).
func setMapCmd(file, key, value string) (Command, error) { return mapEntryCmd("set", file, key, value) }

// addMapCmd is `add map <file> <key> <value>`. HAProxy does not check for duplicates.
func addMapCmd(file, key, value string) (Command, error) { return mapEntryCmd("add", file, key, value) }

// mapEntryCmd is `<verb> map <file> <key> <value>` with the file and the entry checked.
func mapEntryCmd(verb, file, key, value string) (Command, error) {
	if err := checkMapFile(file); err != nil {
		return Command{}, err
	}
	if err := checkMapEntry(key, value); err != nil {
		return Command{}, err
	}
	return mustCommand(okEmpty, verb, "map", file, key, value), nil
}

// delMapCmd is `del map <file> <key>`.
func delMapCmd(file, key string) (Command, error) {
	if err := checkMapFile(file); err != nil {
		return Command{}, err
	}
	if err := checkMapEntry(key, "-"); err != nil {
		return Command{}, err
	}
	return mustCommand(okEmpty, "del", "map", file, key), nil
}

// setMap changes an existing entry; ErrMapKeyNotFound if the key is absent.
func (c *Client) setMap(ctx context.Context, file, key, value string) error {
	return c.run1(ctx, func() (Command, error) { return setMapCmd(file, key, value) })
}

// addMap adds an entry (HAProxy keeps duplicates: prefer PutMap).
func (c *Client) addMap(ctx context.Context, file, key, value string) error {
	return c.run1(ctx, func() (Command, error) { return addMapCmd(file, key, value) })
}

// delMap deletes every entry of key; ErrMapKeyNotFound if there is none.
func (c *Client) delMap(ctx context.Context, file, key string) error {
	return c.run1(ctx, func() (Command, error) { return delMapCmd(file, key) })
}

// PutMap points key at value with one runtime command: `set map` when the key is there,
// `add map` when it is not; an empty value deletes the key (`del map`). It returns the
// previous value and whether there was one, so the change can be undone (restoreMap).
func (c *Client) PutMap(ctx context.Context, file, key, value string) (prev string, existed bool, err error) {
	prev, existed, _, err = c.putMap(ctx, file, key, value)
	return prev, existed, err
}

// putMap is PutMap that also says whether the previous value was read (read), which
// holds even when the change itself failed. The common case, a key that is there, takes
// one connection: `show map` (the previous value) and `set map` on one line.
func (c *Client) putMap(ctx context.Context, file, key, value string) (prev string, existed, read bool, err error) {
	check := value
	if value == "" {
		check = "-"
	}
	if err := checkMapEntry(key, check); err != nil {
		return "", false, false, err
	}
	if err := checkMapFile(file); err != nil {
		return "", false, false, err
	}
	show := mustCommand(okAny, "show", "map", file)
	if value == "" {
		prev, existed, err = c.GetMap(ctx, file, key)
		if err != nil || !existed {
			return "", false, err == nil, err
		}
		return prev, true, true, c.delMap(ctx, file, key)
	}
	answers, errs, err := c.doEach(ctx, []Command{show, mustCommand(okEmpty, "set", "map", file, key, value)})
	if err != nil {
		return "", false, false, err
	}
	if errs[0] != nil {
		return "", false, false, errs[0]
	}
	entries, perr := parseShowMap(answers[0])
	if perr != nil {
		return "", false, false, fmt.Errorf("haproxy %s: %w", c.name, perr)
	}
	for _, e := range entries {
		if e.Key == key {
			prev, existed = e.Value, true
			break
		}
	}
	switch {
	case errs[1] == nil:
		return prev, existed, true, nil
	case !existed && errors.Is(errs[1], ErrMapKeyNotFound):
		return "", false, true, c.addMap(ctx, file, key, value)
	}
	return prev, existed, true, errs[1]
}

// restoreMap undoes a PutMap: it sets key back to prev, or deletes it when !existed.
func (c *Client) restoreMap(ctx context.Context, file, key, prev string, existed bool) error {
	if existed {
		_, _, err := c.PutMap(ctx, file, key, prev)
		return err
	}
	err := c.delMap(ctx, file, key)
	if isKeyNotFound(err) {
		return nil
	}
	return err
}

func isKeyNotFound(err error) bool {
	return errors.Is(err, ErrMapKeyNotFound)
}

// replaceMap replaces a map's whole content atomically: `prepare map` makes an empty
// version, the entries are added to it (batched), and `commit map` switches every
// lookup to it at once. If anything fails before the commit, the live map is untouched.
func (c *Client) replaceMap(ctx context.Context, file string, entries []MapEntry) error {
	if err := checkMapFile(file); err != nil {
		return err
	}
	for _, e := range entries {
		if err := checkMapEntry(e.Key, e.Value); err != nil {
			return err
		}
	}
	out, err := c.Exec(ctx, mustCommand(okPrepared, "prepare", "map", file))
	if err != nil {
		return err
	}
	ver, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out, "New version created:")))
	if err != nil {
		return fmt.Errorf("haproxy %s: prepare map %s: %q: %w", c.name, file, out, ErrUnexpectedAnswer)
	}
	at := "@" + strconv.Itoa(ver)
	cmds := make([]Command, 0, len(entries)+1)
	for _, e := range entries {
		cmds = append(cmds, mustCommand(okEmpty, "add", "map", at, file, e.Key, e.Value))
	}
	if _, err := c.Do(ctx, cmds...); err != nil {
		return err
	}
	_, err = c.Exec(ctx, mustCommand(okEmpty, "commit", "map", at, file))
	return err
}

// canaryValue is the canary map's value: "<backend>:<weight>". HAProxy's frontend splits
// it with field(1,:) and field(2,:) (see Render).
func canaryValue(backend string, weight int) string {
	return backend + ":" + strconv.Itoa(weight)
}

// parseCanaryValue reads a canaryValue.
func parseCanaryValue(v string) (backend string, weight int, err error) {
	be, w, ok := strings.Cut(v, ":")
	if !ok || !validName(be) {
		return "", 0, fmt.Errorf("canary value %q: want <backend>:<weight>: %w", v, ErrParse)
	}
	weight, err = strconv.Atoi(w)
	if err != nil || weight < 0 || weight > 100 {
		return "", 0, fmt.Errorf("canary value %q: weight must be 0..100: %w", v, ErrParse)
	}
	return be, weight, nil
}
