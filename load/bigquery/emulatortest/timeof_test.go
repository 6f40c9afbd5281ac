package emulatortest

import "time"

func timeOf(us int64) time.Time { return time.UnixMicro(us).UTC() }
