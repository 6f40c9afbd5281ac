-- Campaign funnel per cohort week: requests, accepted, messaged, replied, rates and median hours.
SELECT campaign_id, campaign_name, week, leads_contacted, requests_sent, accepted, messaged, replied,
       acceptance_rate, reply_rate, median_hours_to_accept, median_hours_to_reply
FROM campaign_funnel
ORDER BY campaign_id, week
