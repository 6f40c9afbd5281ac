package transform

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/valyala/fastjson"

	"sendpilot-loader/extract/envelope"
	"sendpilot-loader/internal/record"
)

// flattener turns input lines into rows of the four tables and quarantine records. It is not safe for
// concurrent use; each worker has its own.
//
// A line is one of: a buffer envelope (its payload is the event; a payload that was not JSON is tried again,
// so a line quarantined by the receiver is loaded once it parses), a bare SendPilot event, or a quarantine
// record written by an earlier run (its original line is processed again, with its original source).
type flattener struct {
	parser, inner fastjson.Parser
	parsed        int      // input bytes parsed since the parsers were last replaced (resetParsers)
	tables        [4]*rows // in the order of Tables
	quarantine    []byte   // NDJSON quarantine records
	scratch       []byte
	taken         []bool // per key of the object being flattened: whether a typed column holds its value as sent
	extra         []byte
	clean         []byte // the current line, or an envelope's payload_text, made safe to parse (cleanLine)
	// badUTF8 and badSurrogate say what cleanLine replaced in the line being processed.
	badUTF8, badSurrogate bool
	rep                   repairs // what was repaired in the event being written
	stats                 Counts
	keep                  func(canonical, raw string, occurred int64, ok bool) bool
}

// Counts tallies what a run read and produced.
type Counts struct {
	Lines       int64 // non-empty input lines
	Events      int64 // rows in events
	Quarantined int64 // lines written to quarantine
	Filtered    int64 // events left out by Options.Keep
	// Occurred counts events with an occurred_at, and MinOccurred and MaxOccurred bound them in Unix
	// microseconds (meaningful only when Occurred > 0: 0 is 1970-01-01, a time like any other); NoOccurred
	// counts events without one. Loaders use them to prune the partitions a merge touches.
	Occurred                 int64
	MinOccurred, MaxOccurred int64
	NoOccurred               int64
}

func (c *Counts) add(o Counts) {
	c.Lines += o.Lines
	c.Events += o.Events
	c.Quarantined += o.Quarantined
	c.Filtered += o.Filtered
	c.NoOccurred += o.NoOccurred
	c.widen(o.Occurred, o.MinOccurred, o.MaxOccurred)
}

// observe counts an event with occurred_at us and widens the range to include it.
func (c *Counts) observe(us int64) { c.widen(1, us, us) }

// widen counts n more events with a time, between lo and hi, and widens the occurred_at range to match.
func (c *Counts) widen(n, lo, hi int64) {
	if n == 0 {
		return
	}
	if c.Occurred == 0 || lo < c.MinOccurred {
		c.MinOccurred = lo
	}
	if c.Occurred == 0 || hi > c.MaxOccurred {
		c.MaxOccurred = hi
	}
	c.Occurred += n
}

func newFlattener(mem memory.Allocator) *flattener {
	f := &flattener{}
	for i, d := range tableDefs {
		f.tables[i] = newRows(mem, d, &f.rep)
	}
	return f
}

func (f *flattener) release() {
	for _, t := range f.tables {
		t.release()
	}
}

// parserReset is how many input bytes a flattener parses before it replaces its parsers.
const parserReset = 8 << 20

// resetParsers replaces the JSON parsers once they have parsed parserReset bytes, before a chunk of n bytes.
// A fastjson parser keeps every value it ever built for reuse, and each kept object keeps room for as many
// keys as the largest object it held: over a long run of large jobs that grew to tens of megabytes of
// pointers per parser, which the garbage collector scanned at every cycle.
func (f *flattener) resetParsers(n int) {
	f.parsed += n
	if f.parsed > parserReset {
		f.parser, f.inner, f.parsed = fastjson.Parser{}, fastjson.Parser{}, n
	}
}

// source identifies where a line came from, for lineage columns and quarantine records.
type source struct {
	file string
	line int64
}

// line processes one input line (without its newline).
func (f *flattener) line(raw []byte, src source) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return
	}
	f.stats.Lines++
	// A buffer record carries its checksum; a line that fails it changed on disk and is never loaded as is.
	rec, st := record.Open(raw)
	if st == record.Corrupt {
		f.reject(raw, src, "record checksum mismatch: the line changed after it was written")
		return
	}
	raw = rec
	f.badUTF8, f.badSurrogate = false, false
	v, err := f.parse(&f.parser, raw)
	if err != nil {
		f.reject(raw, src, "invalid JSON: "+err.Error())
		return
	}
	obj, err := v.Object()
	if err != nil {
		f.reject(raw, src, "not a JSON object")
		return
	}
	switch {
	case isQuarantineRecord(obj):
		f.requeue(raw, obj, src)
	case obj.Get(envelope.KeyVersion) != nil && obj.Get(envelope.KeyReceivedAt) != nil:
		f.envelope(raw, obj, src)
	default:
		if err := fastjson.ValidateBytes(raw); err != nil {
			f.reject(raw, src, "invalid JSON: "+err.Error())
			return
		}
		f.event(raw, v, src, noEnvelope)
	}
}

// parse parses b with p, first making its text safe (cleanLine) if it needs to be; what was replaced is
// recorded in f.badUTF8 and f.badSurrogate. The parser copies its input, so f.clean can be reused at once.
func (f *flattener) parse(p *fastjson.Parser, b []byte) (*fastjson.Value, error) {
	if !needsCleaning(b) {
		return p.ParseBytes(b)
	}
	var u, s bool
	f.clean, u, s = cleanLine(f.clean[:0], b)
	f.badUTF8, f.badSurrogate = f.badUTF8 || u, f.badSurrogate || s
	return p.ParseBytes(f.clean)
}

// envelopeInfo is what a buffer envelope adds to its event.
type envelopeInfo struct {
	receivedAt     int64
	hasRecv        bool
	recvOutOfRange bool
	signature      []byte
}

var noEnvelope envelopeInfo

func (f *flattener) envelope(raw []byte, obj *fastjson.Object, src source) {
	var info envelopeInfo
	if r := obj.Get(envelope.KeyReceivedAt); r != nil {
		info.receivedAt, info.hasRecv, info.recvOutOfRange = readTime(r)
	}
	if s := obj.Get(envelope.KeySignature); s != nil {
		info.signature, _ = s.StringBytes()
	}
	if p := obj.Get(envelope.KeyPayload); p != nil {
		f.event(raw, p, src, info)
		return
	}
	reason := "envelope has no payload"
	if q := obj.Get(envelope.KeyQuarantine); q != nil {
		if b, err := q.StringBytes(); err == nil {
			reason = string(b)
		}
	}
	if t := obj.Get(envelope.KeyPayloadText); t != nil {
		text, _ := t.StringBytes()
		if p, err := f.parse(&f.inner, text); err == nil && fastjson.ValidateBytes(text) == nil {
			f.event(raw, p, src, info)
			return
		}
	}
	f.reject(raw, src, reason)
}

// requeue processes the original line kept in a quarantine record, as if read from its original source.
func (f *flattener) requeue(raw []byte, obj *fastjson.Object, src source) {
	orig, line, err := quarantined(obj, src)
	if err != nil {
		f.reject(raw, src, err.Error())
		return
	}
	if bytes.IndexByte(bytes.TrimSpace(line), '\n') >= 0 || bytes.HasPrefix(bytes.TrimSpace(line), []byte(`{"quarantine"`)) {
		f.reject(line, orig, "quarantined line is not a single event")
		return
	}
	f.stats.Lines-- // the inner line is counted instead
	f.line(line, orig)
}

// isQuarantineRecord reports whether a line's object is a quarantine record (AppendQuarantineRecord), which is
// read back as the line it keeps.
func isQuarantineRecord(obj *fastjson.Object) bool {
	return obj.Get("quarantine") != nil && (obj.Get("line") != nil || obj.Get("line_base64") != nil)
}

// quarantined reads a quarantine record (AppendQuarantineRecord): the line it keeps, a copy, and where that line
// came from (src where the record does not say).
func quarantined(obj *fastjson.Object, src source) (orig source, line []byte, err error) {
	orig = src
	if q := obj.Get("quarantine"); q != nil {
		if b := q.GetStringBytes("source_file"); b != nil {
			orig.file = string(b)
		}
		if n := q.Get("source_line"); n != nil {
			if line, ok := intOf(n); ok {
				orig.line = line
			}
		}
	}
	if l := obj.Get("line"); l != nil {
		b, _ := l.StringBytes()
		return orig, append([]byte(nil), b...), nil
	}
	b, _ := obj.Get("line_base64").StringBytes()
	dec, err := base64.StdEncoding.DecodeString(string(b))
	if err != nil {
		return orig, nil, errors.New("quarantine record with bad line_base64")
	}
	return orig, dec, nil
}

// reject writes a quarantine record: the line exactly as read, its source and the reason.
func (f *flattener) reject(raw []byte, src source, reason string) {
	f.stats.Quarantined++
	f.quarantine = append(AppendQuarantineRecord(f.quarantine, reason, src.file, src.line, raw), '\n')
}

// AppendQuarantineRecord appends a quarantine record (without its newline) to dst: one JSON object holding
// the reason, where the line came from and the line exactly as read (base64 when it is not UTF-8). It is the
// one format of quarantine files; Files reads such records back as the line they hold, from its original
// file and line, so a quarantine file can be replayed after a fix.
func AppendQuarantineRecord(dst []byte, reason, file string, line int64, raw []byte) []byte {
	dst = append(dst, `{"quarantine":{"reason":`...)
	dst = envelope.AppendString(dst, reason)
	dst = append(dst, `,"source_file":`...)
	dst = envelope.AppendString(dst, file)
	dst = append(dst, `,"source_line":`...)
	dst = strconv.AppendInt(dst, line, 10)
	dst = append(dst, '}')
	if utf8.Valid(raw) {
		dst = append(dst, `,"line":`...)
		dst = envelope.AppendString(dst, string(raw))
	} else {
		dst = append(dst, `,"line_base64":"`...)
		dst = base64.StdEncoding.AppendEncode(dst, raw)
		dst = append(dst, '"')
	}
	return append(dst, '}')
}

// event writes the rows of one SendPilot event.
func (f *flattener) event(raw []byte, v *fastjson.Value, src source, env envelopeInfo) {
	obj, err := v.Object()
	if err != nil {
		f.reject(raw, src, "payload is not a JSON object")
		return
	}
	var idV, typeV, tsV, wsV, dataV *fastjson.Value
	f.extra = f.extra[:0]
	f.rep.reset()
	if f.badUTF8 {
		f.rep.add(RepairUTF8, TableEvents, "")
	}
	if f.badSurrogate {
		f.rep.add(RepairSurrogate, TableEvents, "")
	}
	obj.Visit(func(k []byte, val *fastjson.Value) {
		switch string(k) {
		case "eventId", "event_id":
			idV = val
		case "eventType", "event_type":
			typeV = val
		case "timestamp":
			tsV = val
			if _, ok, outOfRange := readTime(val); !ok && val.Type() != fastjson.TypeNull {
				f.addExtra(k, val) // not a time we can read: keep it as sent
				if outOfRange {
					f.rep.add(RepairTimestamp, TableEvents, eventsColumns[evOccurredAt].name)
				}
			}
		case "workspaceId", "workspace_id":
			wsV = val
		case "data":
			dataV = val
		default:
			f.addExtra(k, val)
		}
	})
	var id []byte
	if idV != nil {
		id, _ = textOf(idV, nil)
		id = append([]byte(nil), id...) // MarshalTo of a number wrote into a fresh slice; keep it stable
	}
	if len(id) == 0 {
		f.reject(raw, src, "no eventId")
		return
	}
	var rawType []byte
	if typeV != nil {
		rawType, _ = textOf(typeV, nil)
	}
	canonical := canonicalBytes(rawType)
	occurred, hasOccurred := int64(0), false
	if tsV != nil {
		occurred, hasOccurred = timeOf(tsV)
	}
	if f.keep != nil && !f.keep(canonical, string(rawType), occurred, hasOccurred) {
		f.stats.Filtered++
		return
	}

	ev := f.tables[0]
	ev.putStr(evEventID, id)
	ev.putString(evEventType, canonical)
	ev.putStr(evEventTypeRaw, rawType)
	if hasOccurred {
		ev.putTime(evOccurredAt, occurred)
		f.stats.observe(occurred)
	} else {
		f.stats.NoOccurred++
	}
	if env.hasRecv {
		ev.putTime(evReceivedAt, env.receivedAt)
	} else if env.recvOutOfRange {
		f.rep.add(RepairTimestamp, TableEvents, eventsColumns[evReceivedAt].name)
	}
	if wsV != nil {
		f.putText(ev, evWorkspaceID, wsV)
	}
	if env.signature != nil {
		ev.putStr(evSignature, env.signature)
	}
	if len(f.extra) > 0 {
		ev.putStr(evExtra, append(f.extra, '}'))
	}
	if utf8.ValidString(src.file) {
		ev.putString(evSourceFile, src.file)
	} else {
		ev.putString(evSourceFile, strings.ToValidUTF8(src.file, "\uFFFD"))
	}
	ev.putInt(evSourceLine, src.line)

	if dataV != nil {
		f.scratch = f.marshalWithout(f.scratch[:0], dataV, TableEvents, eventsColumns[evData].name, "leads", "")
		ev.putStr(evData, f.scratch)
		if data, err := dataV.Object(); err == nil {
			p := parent{eventID: id, eventType: canonical, occurred: occurred, hasOccurred: hasOccurred}
			f.data(ev, data, p)
		}
	}
	if l, ok := ev.startList(evRepairs); ok {
		for _, r := range f.rep.list {
			l.add([]byte(r))
		}
	}
	ev.endRow()
	f.stats.Events++
}

// marshalWithout appends v as JSON, leaving out the keys named when v is an object and their value is an
// array (see marshalRest). It writes warehouse-safe JSON (appendJSON), recording repairs as of table.col.
func (f *flattener) marshalWithout(dst []byte, v *fastjson.Value, table, col, skip1, skip2 string) []byte {
	obj, err := v.Object()
	if err != nil {
		return appendJSON(dst, v, &f.rep, table, col)
	}
	return f.marshalRest(dst, obj, nil, table, col, skip1, skip2)
}

// marshalRest appends obj as JSON, leaving out the keys whose position omit marks (a typed column holds their
// value as sent, see takeText) and the keys named whose value is an array: those arrays become rows of their
// own table, each element in its JSON column, so repeating them here would store every lead twice. Keys are
// kept in their original order. It writes warehouse-safe JSON (appendJSON), recording repairs as of table.col.
func (f *flattener) marshalRest(dst []byte, obj *fastjson.Object, omit []bool, table, col, skip1, skip2 string) []byte {
	dst = append(dst, '{')
	first := true
	i := -1
	obj.Visit(func(k []byte, val *fastjson.Value) {
		i++
		if i < len(omit) && omit[i] {
			return
		}
		if (string(k) == skip1 || string(k) == skip2) && val.Type() == fastjson.TypeArray {
			return
		}
		if !first {
			dst = append(dst, ',')
		}
		first = false
		dst = appendJSONString(dst, k)
		dst = append(dst, ':')
		dst = appendJSON(dst, val, &f.rep, table, col)
	})
	return append(dst, '}')
}

// addExtra adds a top-level key to the event's extra JSON object.
func (f *flattener) addExtra(k []byte, v *fastjson.Value) {
	if len(f.extra) == 0 {
		f.extra = append(f.extra, '{')
	} else {
		f.extra = append(f.extra, ',')
	}
	f.extra = appendJSONString(f.extra, k)
	f.extra = append(f.extra, ':')
	f.extra = appendJSON(f.extra, v, &f.rep, TableEvents, eventsColumns[evExtra].name)
}

// parent is what child rows inherit from their event.
type parent struct {
	eventID     []byte
	eventType   string
	occurred    int64
	hasOccurred bool
	jobID       []byte
	leadID      []byte // set for experience and education rows
}

// isJob reports whether an event describes a lead extractor job or a lead database search, whose snake_case
// campaign_*/started_at fields describe the job rather than an outreach campaign.
func isJob(canonical string) bool {
	return canonical == "lead_extractor.job.completed" || canonical == "lead_database.search.completed"
}

// data fills the typed event columns from the data object and writes its leads.
func (f *flattener) data(ev *rows, data *fastjson.Object, p parent) {
	job := isJob(p.eventType)
	var leads *fastjson.Value
	data.Visit(func(k []byte, v *fastjson.Value) {
		switch string(k) {
		case "campaignId", "campaign_id", "searchId", "search_id":
			// An extractor's campaign_id names the job, not an outreach campaign; so does a search_id.
			if !job && !strings.HasPrefix(string(k), "search") {
				f.putText(ev, evCampaignID, v)
				break
			}
			f.putText(ev, evJobID, v)
			if b, ok := textOf(v, nil); ok {
				p.jobID = append([]byte(nil), b...)
			}
		case "campaignName", "campaign_name":
			if job {
				f.putText(ev, evJobName, v)
			} else {
				f.putText(ev, evCampaignName, v)
			}
		case "message", "messagePreview", "message_preview":
			if f.putText(ev, evMessage, v) {
				ev.putBool(evIsPreview, string(k) != "message")
			}
		case "reply", "replyPreview", "reply_preview":
			if f.putText(ev, evReply, v) {
				ev.putBool(evIsPreview, string(k) != "reply")
			}
		case "startedAt", "started_at":
			if job {
				f.putTime(ev, evJobStartedAt, v)
			} else {
				f.putTime(ev, evStartedAt, v)
			}
		case "completedAt", "completed_at":
			if job {
				f.putTime(ev, evJobCompletedAt, v)
			} else {
				f.putTime(ev, evFinishedAt, v)
			}
		case "creditsUsed", "credits_used":
			if c, err := v.Object(); err == nil {
				c.Visit(func(ck []byte, cv *fastjson.Value) {
					switch string(ck) {
					case "extraction":
						f.putFloat(ev, evCreditsExtraction, cv)
					case "enrichment":
						f.putFloat(ev, evCreditsEnrichment, cv)
					case "total":
						f.putFloat(ev, evCreditsTotal, cv)
					}
				})
			} else {
				f.putFloat(ev, evCreditsTotal, v)
			}
		case "leads":
			leads = v
		default:
			if col, ok := dataText[string(k)]; ok {
				f.putText(ev, col, v)
			} else if col, ok := dataInt[string(k)]; ok {
				f.putInt(ev, col, v)
			} else if col, ok := dataTime[string(k)]; ok {
				f.putTime(ev, col, v)
			}
		}
	})
	if leads == nil {
		return
	}
	arr, err := leads.Array()
	if err != nil {
		return // kept in data only
	}
	ev.putInt(evLeadCount, int64(len(arr)))
	for i, lead := range arr {
		f.lead(lead, int64(i), p)
	}
}

// lead writes one leads row and its experience and education rows. The lead column holds the lead object
// less what its typed columns hold as sent (see takeText) and less its experience and education arrays.
func (f *flattener) lead(v *fastjson.Value, index int64, p parent) {
	ld := f.tables[1]
	ld.putStr(ldEventID, p.eventID)
	ld.putInt(ldLeadIndex, index)
	ld.putString(ldEventType, p.eventType)
	if p.hasOccurred {
		ld.putTime(ldOccurredAt, p.occurred)
	}
	if p.jobID != nil {
		ld.putStr(ldJobID, p.jobID)
	}
	defer ld.endRow()
	obj, err := v.Object()
	if err != nil {
		f.scratch = appendJSON(f.scratch[:0], v, &f.rep, TableLeads, leadsColumns[ldLead].name)
		ld.putStr(ldLead, f.scratch)
		return
	}
	var leadID []byte
	var exp, edu *fastjson.Value
	f.taken = f.taken[:0]
	obj.Visit(func(k []byte, val *fastjson.Value) {
		taken := false
		switch string(k) {
		case "id", "leadId", "lead_id":
			var stored bool
			if stored, taken = f.takeText(ld, ldLeadID, val); stored {
				leadID, _ = textOf(val, nil)
				leadID = append([]byte(nil), leadID...)
			}
		case "skills":
			taken = f.takeSkills(ld, val)
		case "experience":
			exp = val
		case "education":
			edu = val
		default:
			if col, ok := leadText[string(k)]; ok {
				_, taken = f.takeText(ld, col, val)
			} else if col, ok := leadInt[string(k)]; ok {
				taken = f.takeInt(ld, col, val)
			}
		}
		f.taken = append(f.taken, taken)
	})
	f.scratch = f.marshalRest(f.scratch[:0], obj, f.taken, TableLeads, leadsColumns[ldLead].name, "experience", "education")
	ld.putStr(ldLead, f.scratch)
	p.leadID = leadID
	if exp != nil {
		if arr, err := exp.Array(); err == nil {
			ld.putInt(ldExperienceCount, int64(len(arr)))
			for pos, e := range arr {
				f.experience(e, index, int64(pos), p)
			}
		}
	}
	if edu != nil {
		if arr, err := edu.Array(); err == nil {
			ld.putInt(ldEducationCount, int64(len(arr)))
			for pos, e := range arr {
				f.education(e, index, int64(pos), p)
			}
		}
	}
}

// takeSkills fills the skills list from an array; it reports whether the list holds the array as sent (every
// element a string, none cut), so the lead column need not repeat it.
func (f *flattener) takeSkills(ld *rows, val *fastjson.Value) bool {
	arr, err := val.Array()
	if err != nil {
		return false
	}
	l, ok := ld.startList(ldSkills)
	if !ok {
		return false
	}
	exact := true
	for _, s := range arr {
		if b, ok := textOf(s, f.scratch); ok {
			l.add(b)
		}
		exact = exact && s.Type() == fastjson.TypeString
	}
	return exact && !l.full
}

// dataText, dataInt and dataTime map the keys of an event's data object, in both casings, to the events
// columns they fill when their meaning does not depend on the event (those are in the switch in data).
var (
	dataText = map[string]int{
		"leadId": evLeadID, "lead_id": evLeadID,
		"campaignType": evJobType, "campaign_type": evJobType, "mode": evJobMode,
		"searchName": evJobName, "search_name": evJobName,
		"linkedinUrl": evLinkedinURL, "linkedin_url": evLinkedinURL,
		"senderId": evSenderID, "sender_id": evSenderID, "note": evNote,
		"previousStatus": evPreviousStatus, "previous_status": evPreviousStatus,
		"newStatus": evNewStatus, "new_status": evNewStatus, "status": evNewStatus,
		"changedBy": evChangedBy, "changed_by": evChangedBy,
		"pausedBy": evPausedBy, "paused_by": evPausedBy, "resumedBy": evResumedBy, "resumed_by": evResumedBy,
		"resultsUrl": evResultsURL, "results_url": evResultsURL,
	}
	dataInt = map[string]int{
		"sequenceStep": evSequenceStep, "sequence_step": evSequenceStep,
		"totalLeads": evTotalLeads, "total_leads": evTotalLeads,
		"durationMs": evDurationMs, "duration_ms": evDurationMs,
		"requestedLimit": evRequestedLimit, "requested_limit": evRequestedLimit,
		"totalLeadsFound": evTotalLeadsFound, "total_leads_found": evTotalLeadsFound,
		"totalLeadsExtracted": evTotalLeadsExtracted, "total_leads_extracted": evTotalLeadsExtracted,
		"totalLeadsEnriched": evTotalLeadsEnriched, "total_leads_enriched": evTotalLeadsEnriched,
	}
	dataTime = map[string]int{
		"finishedAt": evFinishedAt, "finished_at": evFinishedAt,
		"pausedAt": evPausedAt, "paused_at": evPausedAt,
		"resumedAt": evResumedAt, "resumed_at": evResumedAt,
		"acceptedAt": evAcceptedAt, "accepted_at": evAcceptedAt,
	}
)

// leadText maps the keys of a lead object, in both casings and from both the lead extractor and the lead
// database, to the lead's text columns. ("employees" is a range such as "51-200", text by design.)
var leadText = map[string]int{
	"linkedin_identifier": ldLinkedinIdentifier, "linkedinIdentifier": ldLinkedinIdentifier,
	"linkedin_url": ldLinkedinURL, "linkedinUrl": ldLinkedinURL,
	"first_name": ldFirstName, "firstName": ldFirstName,
	"last_name": ldLastName, "lastName": ldLastName,
	"full_name": ldFullName, "fullName": ldFullName, "name": ldFullName,
	"headline": ldHeadline, "summary": ldSummary, "about": ldSummary,
	"location": ldLocation, "city": ldCity, "country": ldCountry,
	"profile_picture_url": ldProfilePictureURL, "profilePictureUrl": ldProfilePictureURL,
	"company": ldCompany, "company_name": ldCompany, "companyName": ldCompany,
	"job_position": ldJobPosition, "jobPosition": ldJobPosition,
	"job_title": ldJobTitle, "jobTitle": ldJobTitle, "title": ldJobTitle,
	"industry": ldIndustry, "seniority": ldSeniority,
	"company_linkedin_url": ldCompanyLinkedinURL, "companyLinkedinUrl": ldCompanyLinkedinURL,
	"website": ldWebsite, "employees": ldEmployees, "company_size": ldEmployees, "companySize": ldEmployees,
	"email": ldEmail, "phone": ldPhone,
}

// leadInt maps the keys of a lead object that hold counts to the lead's INT64 columns.
var leadInt = map[string]int{
	"connections": ldConnections, "connectionCount": ldConnections, "connection_count": ldConnections,
	"followers": ldFollowers, "followerCount": ldFollowers, "follower_count": ldFollowers,
}

// childTable describes the rows made from a lead's experience or education array: which table, where the key
// and parent columns are, and which element keys fill which typed column.
type childTable struct {
	table                                            int
	eventID, leadIndex, position, leadID, occurredAt int
	element                                          int
	fields                                           map[string]int
}

var experienceTable = &childTable{
	table: 2, eventID: exEventID, leadIndex: exLeadIndex, position: exPosition, leadID: exLeadID, occurredAt: exOccurredAt,
	element: exElement,
	fields: map[string]int{
		"title": exTitle, "position": exTitle, "job_title": exTitle,
		"company": exCompany, "company_name": exCompany, "companyName": exCompany,
		"duration": exDuration, "location": exLocation, "description": exDescription,
		"start_date": exStartDate, "startDate": exStartDate, "start": exStartDate,
		"end_date": exEndDate, "endDate": exEndDate, "end": exEndDate,
	},
}

var educationTable = &childTable{
	table: 3, eventID: edEventID, leadIndex: edLeadIndex, position: edPosition, leadID: edLeadID, occurredAt: edOccurredAt,
	element: edElement,
	fields: map[string]int{
		"school": edSchool, "school_name": edSchool, "schoolName": edSchool, "institution": edSchool,
		"degree": edDegree, "degree_name": edDegree,
		"field_of_study": edFieldOfStudy, "fieldOfStudy": edFieldOfStudy, "field": edFieldOfStudy,
		"start_date": edStartDate, "startDate": edStartDate, "start": edStartDate,
		"end_date": edEndDate, "endDate": edEndDate, "end": edEndDate,
	},
}

func (f *flattener) experience(v *fastjson.Value, index, pos int64, p parent) {
	f.child(experienceTable, v, index, pos, p)
}

func (f *flattener) education(v *fastjson.Value, index, pos int64, p parent) {
	f.child(educationTable, v, index, pos, p)
}

// child writes one experience or education row: keys, parent columns, its typed fields and the element as
// JSON, less what the typed fields hold as sent (see takeText). Every field is text: dates and durations come
// as free text.
func (f *flattener) child(c *childTable, v *fastjson.Value, index, pos int64, p parent) {
	t := f.tables[c.table]
	t.putStr(c.eventID, p.eventID)
	t.putInt(c.leadIndex, index)
	t.putInt(c.position, pos)
	if p.leadID != nil {
		t.putStr(c.leadID, p.leadID)
	}
	if p.hasOccurred {
		t.putTime(c.occurredAt, p.occurred)
	}
	table, col := tableDefs[c.table].name, tableDefs[c.table].columns[c.element].name
	if obj, err := v.Object(); err == nil {
		f.taken = f.taken[:0]
		obj.Visit(func(k []byte, val *fastjson.Value) {
			taken := false
			if col, ok := c.fields[string(k)]; ok {
				_, taken = f.takeText(t, col, val)
			}
			f.taken = append(f.taken, taken)
		})
		f.scratch = f.marshalRest(f.scratch[:0], obj, f.taken, table, col, "", "")
	} else {
		f.scratch = appendJSON(f.scratch[:0], v, &f.rep, table, col)
	}
	t.putStr(c.element, f.scratch)
	t.endRow()
}

// putText puts a value into a STRING column; it reports whether a non-null value was put.
func (f *flattener) putText(t *rows, col int, v *fastjson.Value) bool {
	stored, _ := f.takeText(t, col, v)
	return stored
}

// takeText puts a value into a STRING column, as putText. taken reports whether the column now holds the value
// exactly as sent: a JSON string, stored whole. Only then may a JSON column leave the key out, so that the
// typed columns and the JSON column together still hold every value as sent; a number, a boolean, an object,
// a string cut for its size or a second spelling of a filled column stays in the JSON.
func (f *flattener) takeText(t *rows, col int, v *fastjson.Value) (stored, taken bool) {
	if t.filled[col] {
		return false, false
	}
	b, ok := textOf(v, f.scratch)
	if !ok {
		return false, false
	}
	whole := t.putStr(col, b)
	return true, whole && v.Type() == fastjson.TypeString
}

func (f *flattener) putInt(t *rows, col int, v *fastjson.Value) {
	f.takeInt(t, col, v)
}

// takeInt puts an integer into an INT64 column, as putInt; it reports whether the column holds the value
// exactly as sent: a JSON number spelled as the integer is (42, not "42", 42.0 or 4.2e1).
func (f *flattener) takeInt(t *rows, col int, v *fastjson.Value) bool {
	n, ok := intOf(v)
	if !ok || !t.putInt(col, n) || v.Type() != fastjson.TypeNumber {
		return false
	}
	var sent, canonical [24]byte
	return bytes.Equal(v.MarshalTo(sent[:0]), strconv.AppendInt(canonical[:0], n, 10))
}

func (f *flattener) putFloat(t *rows, col int, v *fastjson.Value) {
	if x, ok := floatOf(v); ok {
		t.putFloat(col, x)
	}
}

// putTime puts a time into a TIMESTAMP column; a time outside the range both warehouses hold leaves it null
// and is recorded as a repair (the value as sent is in the row's JSON column).
func (f *flattener) putTime(t *rows, col int, v *fastjson.Value) {
	us, ok, outOfRange := readTime(v)
	switch {
	case ok:
		t.putTime(col, us)
	case outOfRange && !t.filled[col]:
		f.rep.add(RepairTimestamp, t.def.name, t.def.columns[col].name)
	}
}
