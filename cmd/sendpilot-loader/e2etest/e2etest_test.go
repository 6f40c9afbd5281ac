package e2etest

import (
	"slices"
	"testing"
)

// The servers a test starts must not pick up the configuration of the shell that runs the test.
func TestEnvironDropsConfiguration(t *testing.T) {
	got := Environ([]string{"PATH=/bin", "SENDPILOT_WEBHOOK_SIGNATURE_MODE=off", "SENDPILOT_CONFIG=/etc/x.yaml", "HOME=/root", "XSENDPILOT_Y=1"})
	if want := []string{"PATH=/bin", "HOME=/root", "XSENDPILOT_Y=1"}; !slices.Equal(got, want) {
		t.Errorf("Environ = %q, want %q", got, want)
	}
}
