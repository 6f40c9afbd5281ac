-- Outreach campaigns: name, lifecycle state, start and finish, events seen.
SELECT campaign_id, campaign_name, state, total_leads, started_at, finished_at, events, last_event_at
FROM campaigns
ORDER BY campaign_id
