package transform

import (
	"github.com/apache/arrow-go/v18/arrow"
)

// Table names, also the Parquet file names (plus ".parquet") and the warehouse table names.
const (
	TableEvents     = "events"
	TableLeads      = "leads"
	TableExperience = "experience"
	TableEducation  = "education"
)

// Tables lists the output tables in the order they are written and reported.
var Tables = []string{TableEvents, TableLeads, TableExperience, TableEducation}

// NaturalKeys are each table's key: the only rule by which scheduled loads and backfills tell a row the
// warehouse already holds, and by which a replace finds the rows to replace. Every warehouse builds its dedup
// and merge statements from it.
var NaturalKeys = map[string][]string{
	TableEvents:     {"event_id"},
	TableLeads:      {"event_id", "lead_index"},
	TableExperience: {"event_id", "lead_index", "position"},
	TableEducation:  {"event_id", "lead_index", "position"},
}

var (
	tsType   = &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "UTC"}
	strType  = arrow.BinaryTypes.String
	i64Type  = arrow.PrimitiveTypes.Int64
	f64Type  = arrow.PrimitiveTypes.Float64
	boolType = arrow.FixedWidthTypes.Boolean
	listStr  = arrow.ListOf(arrow.BinaryTypes.String)
)

// column declares one output column. Columns not nullable are the natural keys and lineage, which every row has.
type column struct {
	name     string
	typ      arrow.DataType
	nullable bool
	// dict asks for Parquet dictionary encoding: worth it for low-cardinality strings only.
	dict bool
	// json marks a STRING column holding JSON text (JSON in the warehouse): a value too large for it is left
	// NULL rather than cut, since cut JSON is not JSON.
	json bool
}

func key(name string, typ arrow.DataType) column { return column{name: name, typ: typ} }
func opt(name string, typ arrow.DataType) column { return column{name: name, typ: typ, nullable: true} }
func optDict(name string, typ arrow.DataType) column {
	return column{name: name, typ: typ, nullable: true, dict: true}
}
func optJSON(name string) column { return column{name: name, typ: strType, nullable: true, json: true} }

// Column indexes of the events table; the order is the schema's.
const (
	evEventID = iota
	evEventType
	evEventTypeRaw
	evOccurredAt
	evReceivedAt
	evWorkspaceID
	evLeadID
	evCampaignID
	evSenderID
	evLinkedinURL
	evMessage
	evReply
	evIsPreview
	evNote
	evSequenceStep
	evPreviousStatus
	evNewStatus
	evChangedBy
	evCampaignName
	evTotalLeads
	evStartedAt
	evPausedAt
	evPausedBy
	evResumedAt
	evResumedBy
	evFinishedAt
	evAcceptedAt
	evJobID
	evJobName
	evJobType
	evJobMode
	evJobStartedAt
	evJobCompletedAt
	evDurationMs
	evRequestedLimit
	evTotalLeadsFound
	evTotalLeadsExtracted
	evTotalLeadsEnriched
	evCreditsExtraction
	evCreditsEnrichment
	evCreditsTotal
	evResultsURL
	evLeadCount
	evSignature
	evData
	evExtra
	evSourceFile
	evSourceLine
	evRepairs
	evColumns
)

var eventsColumns = [evColumns]column{
	evEventID:             key("event_id", strType),
	evEventType:           {name: "event_type", typ: strType, dict: true},
	evEventTypeRaw:        {name: "event_type_raw", typ: strType, dict: true},
	evOccurredAt:          opt("occurred_at", tsType),
	evReceivedAt:          opt("received_at", tsType),
	evWorkspaceID:         optDict("workspace_id", strType),
	evLeadID:              opt("lead_id", strType),
	evCampaignID:          optDict("campaign_id", strType),
	evSenderID:            optDict("sender_id", strType),
	evLinkedinURL:         opt("linkedin_url", strType),
	evMessage:             opt("message", strType),
	evReply:               opt("reply", strType),
	evIsPreview:           opt("text_is_preview", boolType),
	evNote:                opt("note", strType),
	evSequenceStep:        opt("sequence_step", i64Type),
	evPreviousStatus:      optDict("previous_status", strType),
	evNewStatus:           optDict("new_status", strType),
	evChangedBy:           optDict("changed_by", strType),
	evCampaignName:        optDict("campaign_name", strType),
	evTotalLeads:          opt("total_leads", i64Type),
	evStartedAt:           opt("started_at", tsType),
	evPausedAt:            opt("paused_at", tsType),
	evPausedBy:            optDict("paused_by", strType),
	evResumedAt:           opt("resumed_at", tsType),
	evResumedBy:           optDict("resumed_by", strType),
	evFinishedAt:          opt("finished_at", tsType),
	evAcceptedAt:          opt("accepted_at", tsType),
	evJobID:               opt("job_id", strType),
	evJobName:             opt("job_name", strType),
	evJobType:             optDict("job_type", strType),
	evJobMode:             optDict("job_mode", strType),
	evJobStartedAt:        opt("job_started_at", tsType),
	evJobCompletedAt:      opt("job_completed_at", tsType),
	evDurationMs:          opt("duration_ms", i64Type),
	evRequestedLimit:      opt("requested_limit", i64Type),
	evTotalLeadsFound:     opt("total_leads_found", i64Type),
	evTotalLeadsExtracted: opt("total_leads_extracted", i64Type),
	evTotalLeadsEnriched:  opt("total_leads_enriched", i64Type),
	evCreditsExtraction:   opt("credits_extraction", f64Type),
	evCreditsEnrichment:   opt("credits_enrichment", f64Type),
	evCreditsTotal:        opt("credits_total", f64Type),
	evResultsURL:          opt("results_url", strType),
	evLeadCount:           opt("lead_count", i64Type),
	evSignature:           optDict("signature", strType),
	evData:                optJSON("data"),
	evExtra:               optJSON("extra"),
	evSourceFile:          {name: "source_file", typ: strType, dict: true},
	evSourceLine:          key("source_line", i64Type),
	evRepairs:             opt("repairs", listStr),
}

// Column indexes of the leads table.
const (
	ldEventID = iota
	ldLeadIndex
	ldEventType
	ldOccurredAt
	ldJobID
	ldLeadID
	ldLinkedinIdentifier
	ldLinkedinURL
	ldFirstName
	ldLastName
	ldFullName
	ldHeadline
	ldSummary
	ldLocation
	ldCity
	ldCountry
	ldProfilePictureURL
	ldCompany
	ldJobPosition
	ldJobTitle
	ldIndustry
	ldSeniority
	ldCompanyLinkedinURL
	ldWebsite
	ldEmployees
	ldEmail
	ldPhone
	ldConnections
	ldFollowers
	ldSkills
	ldExperienceCount
	ldEducationCount
	ldLead
	ldColumns
)

var leadsColumns = [ldColumns]column{
	ldEventID:            key("event_id", strType),
	ldLeadIndex:          key("lead_index", i64Type),
	ldEventType:          {name: "event_type", typ: strType, dict: true},
	ldOccurredAt:         opt("occurred_at", tsType),
	ldJobID:              optDict("job_id", strType),
	ldLeadID:             opt("lead_id", strType),
	ldLinkedinIdentifier: opt("linkedin_identifier", strType),
	ldLinkedinURL:        opt("linkedin_url", strType),
	ldFirstName:          opt("first_name", strType),
	ldLastName:           opt("last_name", strType),
	ldFullName:           opt("full_name", strType),
	ldHeadline:           opt("headline", strType),
	ldSummary:            opt("summary", strType),
	ldLocation:           optDict("location", strType),
	ldCity:               optDict("city", strType),
	ldCountry:            optDict("country", strType),
	ldProfilePictureURL:  opt("profile_picture_url", strType),
	ldCompany:            opt("company", strType),
	ldJobPosition:        opt("job_position", strType),
	ldJobTitle:           opt("job_title", strType),
	ldIndustry:           optDict("industry", strType),
	ldSeniority:          optDict("seniority", strType),
	ldCompanyLinkedinURL: opt("company_linkedin_url", strType),
	ldWebsite:            opt("website", strType),
	ldEmployees:          optDict("employees", strType),
	ldEmail:              opt("email", strType),
	ldPhone:              opt("phone", strType),
	ldConnections:        opt("connections", i64Type),
	ldFollowers:          opt("followers", i64Type),
	ldSkills:             opt("skills", listStr),
	ldExperienceCount:    opt("experience_count", i64Type),
	ldEducationCount:     opt("education_count", i64Type),
	ldLead:               optJSON("lead"),
}

// Column indexes of the experience table.
const (
	exEventID = iota
	exLeadIndex
	exPosition
	exLeadID
	exOccurredAt
	exTitle
	exCompany
	exDuration
	exLocation
	exStartDate
	exEndDate
	exDescription
	exElement
	exColumns
)

var experienceColumns = [exColumns]column{
	exEventID:     key("event_id", strType),
	exLeadIndex:   key("lead_index", i64Type),
	exPosition:    key("position", i64Type),
	exLeadID:      opt("lead_id", strType),
	exOccurredAt:  opt("occurred_at", tsType),
	exTitle:       opt("title", strType),
	exCompany:     opt("company", strType),
	exDuration:    opt("duration", strType),
	exLocation:    opt("location", strType),
	exStartDate:   opt("start_date", strType),
	exEndDate:     opt("end_date", strType),
	exDescription: opt("description", strType),
	exElement:     optJSON("element"),
}

// Column indexes of the education table.
const (
	edEventID = iota
	edLeadIndex
	edPosition
	edLeadID
	edOccurredAt
	edSchool
	edDegree
	edFieldOfStudy
	edStartDate
	edEndDate
	edElement
	edColumns
)

var educationColumns = [edColumns]column{
	edEventID:      key("event_id", strType),
	edLeadIndex:    key("lead_index", i64Type),
	edPosition:     key("position", i64Type),
	edLeadID:       opt("lead_id", strType),
	edOccurredAt:   opt("occurred_at", tsType),
	edSchool:       opt("school", strType),
	edDegree:       opt("degree", strType),
	edFieldOfStudy: opt("field_of_study", strType),
	edStartDate:    opt("start_date", strType),
	edEndDate:      opt("end_date", strType),
	edElement:      optJSON("element"),
}

// tableDef ties a table's name to its columns.
type tableDef struct {
	name    string
	columns []column
	schema  *arrow.Schema
}

func newTableDef(name string, cols []column) *tableDef {
	fields := make([]arrow.Field, len(cols))
	for i, c := range cols {
		fields[i] = arrow.Field{Name: c.name, Type: c.typ, Nullable: c.nullable}
	}
	return &tableDef{name: name, columns: cols, schema: arrow.NewSchema(fields, nil)}
}

var tableDefs = []*tableDef{
	newTableDef(TableEvents, eventsColumns[:]),
	newTableDef(TableLeads, leadsColumns[:]),
	newTableDef(TableExperience, experienceColumns[:]),
	newTableDef(TableEducation, educationColumns[:]),
}

// Schema returns the Arrow schema of a table, or nil for an unknown name. The SQL DDL in sql/ must match it
// column for column; a test checks that.
func Schema(table string) *arrow.Schema {
	for _, d := range tableDefs {
		if d.name == table {
			return d.schema
		}
	}
	return nil
}
