package localprometheus

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// RunPromtool runs the installation's promtool with args in dir (the working directory, against
// which relative paths resolve; "" for the caller's) and returns its output, standard output
// and standard error together. A failing run's error carries that output too: promtool says
// there which rule or test failed and why.
func (in *Installation) RunPromtool(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, in.Promtool, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("promtool %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}
