/*
name: recon_errors
summary: Calls by the keys that were refused for lack of permission, grouped by call and error - the trace of an attacker probing what a key may do.
params:
  access_key_ids: {type: array(varchar), example: [AKIAWOGXN38MFN92ING5, ASIANQQHHS551LWULIWD]}
  exclude_ips: {type: array(varchar), default: [], example: [203.0.113.77], description: "calls from these IPs are left out: the key owner's own network, so an investigation keeps only the attacker's use of a shared key"}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  event_source: {type: varchar}
  event_name: {type: varchar}
  error_code: {type: varchar}
  call_count: {type: bigint}
  source_ip_count: {type: bigint}
  first_seen_at: {type: varchar}
  last_seen_at: {type: varchar}
*/
SELECT
    eventsource AS event_source,
    eventname AS event_name,
    errorcode AS error_code,
    count(*) AS call_count,
    count(DISTINCT sourceipaddress) AS source_ip_count,
    min(eventtime) AS first_seen_at,
    max(eventtime) AS last_seen_at
FROM cloudtrail
WHERE "timestamp" BETWEEN :start_day AND :end_day
    AND eventtime >= :start_time
    AND eventtime < :end_time
    AND contains(:access_key_ids, useridentity.accesskeyid)
    AND NOT contains(:exclude_ips, coalesce(sourceipaddress, ''))
    AND (
        errorcode IN (
            'AccessDenied', 'AccessDeniedException', 'UnauthorizedOperation', 'Client.UnauthorizedOperation',
            'UnauthorizedAccess', 'UnauthorizedException', 'AuthorizationError', 'AuthorizationErrorException',
            'Forbidden', 'ForbiddenException', 'OptInRequired', 'SubscriptionRequiredException',
            'InvalidClientTokenId', 'UnrecognizedClientException', 'SignatureDoesNotMatch')
        OR errorcode LIKE '%AccessDenied%'
        OR errorcode LIKE '%Unauthorized%'
    )
GROUP BY eventsource, eventname, errorcode
ORDER BY call_count DESC, event_source, event_name, error_code
