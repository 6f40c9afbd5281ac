-- Events per type as sent (older and newer names, unknown ones too), with first and last event time.
SELECT event_type, event_type_raw, COUNT(*) AS events, MIN(occurred_at) AS first_at, MAX(occurred_at) AS last_at
FROM events_latest
GROUP BY event_type, event_type_raw
ORDER BY events DESC, event_type_raw
