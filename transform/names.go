package transform

// UnknownEventType is the canonical name of any event name not in KnownEventTypes; the raw name is kept.
const UnknownEventType = "unknown"

// canonicalNames maps every event name SendPilot has documented, in both generations of its docs, to the
// newer name. Names that only the newer docs use map to themselves.
var canonicalNames = map[string]string{
	// Older names and their newer equivalents.
	"message.received":    "reply.received",
	"connection.sent":     "connection_request.sent",
	"connection.accepted": "connection_request.accepted",
	"lead.status.changed": "lead.updated",
	// Names only the newer docs use.
	"reply.received":                 "reply.received",
	"connection_request.sent":        "connection_request.sent",
	"connection_request.accepted":    "connection_request.accepted",
	"lead.updated":                   "lead.updated",
	"lead.tag.updated":               "lead.tag.updated",
	"campaign.finished":              "campaign.finished",
	"lead_database.search.completed": "lead_database.search.completed",
	"lead_extractor.job.completed":   "lead_extractor.job.completed",
	// Names both generations use.
	"message.sent":     "message.sent",
	"campaign.started": "campaign.started",
	"campaign.paused":  "campaign.paused",
	"campaign.resumed": "campaign.resumed",
}

// KnownEventTypes lists the 16 documented event names.
func KnownEventTypes() []string {
	out := make([]string, 0, len(canonicalNames))
	for k := range canonicalNames {
		out = append(out, k)
	}
	return out
}

// CanonicalEventType returns the newer name for a documented event name, and UnknownEventType otherwise.
func CanonicalEventType(raw string) string {
	if c, ok := canonicalNames[raw]; ok {
		return c
	}
	return UnknownEventType
}

// canonicalBytes is CanonicalEventType without allocating for the raw name.
func canonicalBytes(raw []byte) string {
	if c, ok := canonicalNames[string(raw)]; ok {
		return c
	}
	return UnknownEventType
}
