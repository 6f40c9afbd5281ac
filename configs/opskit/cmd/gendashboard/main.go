// Command gendashboard writes the sendpilot-loader Grafana dashboard. Run it from configs/opskit:
//
//	go run ./cmd/gendashboard ../grafana/sendpilot-loader.json
package main

import (
	"fmt"
	"os"

	"sendpilot-loader/configs/opskit/dashboard"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: gendashboard OUTPUT.json")
		os.Exit(2)
	}
	out, err := dashboard.JSON()
	if err == nil {
		err = os.WriteFile(os.Args[1], out, 0o644)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
