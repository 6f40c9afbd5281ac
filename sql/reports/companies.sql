-- The 50 companies with the most distinct lead profiles.
SELECT company, COUNT(*) AS profiles, SUM(CASE WHEN email IS NOT NULL THEN 1 ELSE 0 END) AS with_email
FROM lead_profiles
WHERE company IS NOT NULL
GROUP BY company
ORDER BY profiles DESC, company
LIMIT 50
