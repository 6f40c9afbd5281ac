package configs

import (
	"flag"
	"slices"
	"testing"
)

func TestFlagsMayFollowArguments(t *testing.T) {
	for _, tc := range []struct {
		args []string
		rest []string
		dir  string
	}{
		{[]string{"funnel", "--data-dir", "d1"}, []string{"funnel"}, "d1"},
		{[]string{"--data-dir", "d2", "funnel"}, []string{"funnel"}, "d2"},
		{[]string{"a", "--data-dir=d3", "b"}, []string{"a", "b"}, "d3"},
		{[]string{"-", "--data-dir", "d4"}, []string{"-"}, "d4"},
		{[]string{"--data-dir", "d5", "--", "--data-dir", "x"}, []string{"--data-dir", "x"}, "d5"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		cfg, rest, err := Parse(fs, tc.args, func(string) string { return "" }, BindCommon)
		if err != nil || !slices.Equal(rest, tc.rest) || cfg.DataDir != tc.dir {
			t.Errorf("%q: rest %q, data dir %q, %v; want %q, %q", tc.args, rest, cfg.DataDir, err, tc.rest, tc.dir)
		}
	}
}
