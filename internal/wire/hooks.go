package wire

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"go.uber.org/zap"

	"github.com/swap-dev/swap/switcher"
)

// Hooks runs deploy hooks with /bin/sh -c, in swap's environment plus the hook's.
type Hooks struct{ Log *zap.Logger }

var _ switcher.HookRunner = Hooks{}

// maxHookOutput is how much of a failed hook's output its error quotes.
const maxHookOutput = 2048

func (h Hooks) Run(ctx context.Context, name, command string, env []string) error {
	cmd := exec.CommandContext(ctx, "/bin/sh", "-c", command)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if h.Log != nil {
		h.Log.Info("hook ran", zap.String("hook", name), zap.Bool("ok", err == nil))
	}
	if err != nil {
		text := strings.TrimSpace(out.String())
		if len(text) > maxHookOutput {
			text = "..." + text[len(text)-maxHookOutput:]
		}
		return fmt.Errorf("%q: %w; output: %s", command, err, text)
	}
	return nil
}
