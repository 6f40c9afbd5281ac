// Package emulatortest runs the BigQuery warehouse against goccy/bigquery-emulator, in process. It is a module
// of its own so that the emulator (slow to build) stays out of the main module's dependencies; .ci/run runs it.
package emulatortest
