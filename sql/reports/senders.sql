-- Daily activity per sender account: requests, acceptances, messages, replies; newest day first.
SELECT day, sender_id, connection_requests_sent, connections_accepted, messages_sent, replies_received,
       leads_touched, campaigns
FROM sender_daily_activity
ORDER BY day DESC, sender_id
