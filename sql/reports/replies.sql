-- The latest 100 replies with lead, company, campaign and the lead's current status.
SELECT replied_at, campaign_name, full_name, company, lead_status, reply_text, is_preview, lead_id, event_id
FROM replies
ORDER BY replied_at DESC, event_id DESC
LIMIT 100
