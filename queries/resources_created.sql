/*
name: resources_created
summary: Resources the keys created - instances (every id of a RunInstances), spot requests, users, roles, keys, functions, key pairs, security groups, buckets, secrets, trails and more - to delete or quarantine in eradication.
params:
  access_key_ids: {type: array(varchar), example: [AKIAOZUDECYXYM4ONAN4]}
  exclude_ips: {type: array(varchar), default: [], example: [203.0.113.77], description: "calls from these IPs are left out: the key owner's own network, so an investigation keeps only the attacker's use of a shared key"}
  start_day: {type: day, example: 2024/07/30, description: first partition day (inclusive)}
  end_day: {type: day, example: 2024/08/02, description: last partition day (inclusive)}
  start_time: {type: timestamp, example: "2024-07-30T00:00:00Z", description: window start (inclusive)}
  end_time: {type: timestamp, example: "2024-08-03T00:00:00Z", description: window end (exclusive)}
columns:
  resource_type: {type: varchar, description: "service:kind, e.g. ec2:instance, iam:user, lambda:function"}
  resource_id: {type: varchar, description: the id or name an eradication step needs}
  aws_region: {type: varchar}
  event_name: {type: varchar}
  event_time: {type: varchar}
  access_key_id: {type: varchar}
  event_id: {type: varchar}
*/
WITH created AS (
    SELECT
        eventtime,
        eventsource,
        eventname,
        awsregion,
        useridentity.accesskeyid AS access_key_id,
        eventid,
        requestparameters AS req,
        responseelements AS resp
    FROM cloudtrail
    WHERE "timestamp" BETWEEN :start_day AND :end_day
        AND eventtime >= :start_time
        AND eventtime < :end_time
        AND contains(:access_key_ids, useridentity.accesskeyid)
        AND NOT contains(:exclude_ips, coalesce(sourceipaddress, ''))
        AND errorcode IS NULL
        AND (
            (eventsource = 'ec2.amazonaws.com' AND eventname IN (
                'RunInstances', 'RequestSpotInstances', 'CreateKeyPair', 'ImportKeyPair', 'CreateSecurityGroup',
                'CreateImage', 'CreateSnapshot', 'CreateVolume'))
            OR (eventsource = 'iam.amazonaws.com' AND eventname IN (
                'CreateUser', 'CreateRole', 'CreateGroup', 'CreateAccessKey', 'CreateLoginProfile', 'CreatePolicy',
                'CreateInstanceProfile', 'CreateVirtualMFADevice', 'CreateSAMLProvider',
                'CreateOpenIDConnectProvider'))
            OR (eventsource = 'lambda.amazonaws.com'
                AND (eventname LIKE 'CreateFunction%' OR eventname LIKE 'PublishLayerVersion%'))
            OR (eventsource = 's3.amazonaws.com' AND eventname = 'CreateBucket')
            OR (eventsource = 'secretsmanager.amazonaws.com' AND eventname = 'CreateSecret')
            OR (eventsource = 'cloudtrail.amazonaws.com' AND eventname = 'CreateTrail')
            OR (eventsource = 'rolesanywhere.amazonaws.com' AND eventname IN ('CreateTrustAnchor', 'CreateProfile'))
            OR (eventsource = 'cloudformation.amazonaws.com' AND eventname = 'CreateStack')
            OR (eventsource = 'rds.amazonaws.com' AND eventname IN ('CreateDBInstance', 'CreateDBCluster'))
        )
),
instances AS (
    SELECT 'ec2:instance' AS resource_type, instance_id AS resource_id, created.*
    FROM created
    CROSS JOIN UNNEST(regexp_extract_all(resp, '"instanceId"\s*:\s*"([^"]+)"', 1)) AS t (instance_id)
    WHERE eventname = 'RunInstances'
),
spot_requests AS (
    SELECT 'ec2:spot-instance-request' AS resource_type, request_id AS resource_id, created.*
    FROM created
    CROSS JOIN UNNEST(regexp_extract_all(resp, '"spotInstanceRequestId"\s*:\s*"([^"]+)"', 1)) AS t (request_id)
    WHERE eventname = 'RequestSpotInstances'
),
single AS (
    SELECT
        CASE
            WHEN eventname LIKE 'CreateFunction%' THEN 'lambda:function'
            WHEN eventname LIKE 'PublishLayerVersion%' THEN 'lambda:layer-version'
            WHEN eventname IN ('CreateKeyPair', 'ImportKeyPair') THEN 'ec2:key-pair'
            WHEN eventname = 'CreateSecurityGroup' THEN 'ec2:security-group'
            WHEN eventname = 'CreateImage' THEN 'ec2:image'
            WHEN eventname = 'CreateSnapshot' THEN 'ec2:snapshot'
            WHEN eventname = 'CreateVolume' THEN 'ec2:volume'
            WHEN eventname = 'CreateUser' THEN 'iam:user'
            WHEN eventname = 'CreateRole' THEN 'iam:role'
            WHEN eventname = 'CreateGroup' THEN 'iam:group'
            WHEN eventname = 'CreateAccessKey' THEN 'iam:access-key'
            WHEN eventname = 'CreateLoginProfile' THEN 'iam:login-profile'
            WHEN eventname = 'CreatePolicy' THEN 'iam:policy'
            WHEN eventname = 'CreateInstanceProfile' THEN 'iam:instance-profile'
            WHEN eventname = 'CreateVirtualMFADevice' THEN 'iam:mfa-device'
            WHEN eventname = 'CreateSAMLProvider' THEN 'iam:saml-provider'
            WHEN eventname = 'CreateOpenIDConnectProvider' THEN 'iam:oidc-provider'
            WHEN eventname = 'CreateBucket' THEN 's3:bucket'
            WHEN eventname = 'CreateSecret' THEN 'secretsmanager:secret'
            WHEN eventname = 'CreateTrail' THEN 'cloudtrail:trail'
            WHEN eventname = 'CreateTrustAnchor' THEN 'rolesanywhere:trust-anchor'
            WHEN eventname = 'CreateProfile' THEN 'rolesanywhere:profile'
            WHEN eventname = 'CreateStack' THEN 'cloudformation:stack'
            WHEN eventname = 'CreateDBInstance' THEN 'rds:db-instance'
            WHEN eventname = 'CreateDBCluster' THEN 'rds:db-cluster'
        END AS resource_type,
        CASE
            WHEN eventname LIKE 'CreateFunction%' THEN coalesce(
                json_extract_scalar(req, '$.functionName'), json_extract_scalar(resp, '$.functionArn'))
            WHEN eventname LIKE 'PublishLayerVersion%' THEN json_extract_scalar(resp, '$.layerVersionArn')
            WHEN eventname IN ('CreateKeyPair', 'ImportKeyPair') THEN json_extract_scalar(req, '$.keyName')
            WHEN eventname = 'CreateSecurityGroup' THEN json_extract_scalar(resp, '$.groupId')
            WHEN eventname = 'CreateImage' THEN json_extract_scalar(resp, '$.imageId')
            WHEN eventname = 'CreateSnapshot' THEN json_extract_scalar(resp, '$.snapshotId')
            WHEN eventname = 'CreateVolume' THEN json_extract_scalar(resp, '$.volumeId')
            WHEN eventname = 'CreateUser' THEN coalesce(
                json_extract_scalar(resp, '$.user.userName'), json_extract_scalar(req, '$.userName'))
            WHEN eventname = 'CreateRole' THEN coalesce(
                json_extract_scalar(resp, '$.role.roleName'), json_extract_scalar(req, '$.roleName'))
            WHEN eventname = 'CreateGroup' THEN json_extract_scalar(req, '$.groupName')
            WHEN eventname = 'CreateAccessKey' THEN json_extract_scalar(resp, '$.accessKey.accessKeyId')
            WHEN eventname = 'CreateLoginProfile' THEN json_extract_scalar(req, '$.userName')
            WHEN eventname = 'CreatePolicy' THEN coalesce(
                json_extract_scalar(resp, '$.policy.arn'), json_extract_scalar(req, '$.policyName'))
            WHEN eventname = 'CreateInstanceProfile' THEN json_extract_scalar(req, '$.instanceProfileName')
            WHEN eventname = 'CreateVirtualMFADevice' THEN coalesce(
                json_extract_scalar(resp, '$.virtualMFADevice.serialNumber'),
                json_extract_scalar(req, '$.virtualMFADeviceName'))
            WHEN eventname = 'CreateSAMLProvider' THEN coalesce(
                json_extract_scalar(resp, '$.sAMLProviderArn'), json_extract_scalar(req, '$.name'))
            WHEN eventname = 'CreateOpenIDConnectProvider' THEN coalesce(
                json_extract_scalar(resp, '$.openIDConnectProviderArn'), json_extract_scalar(req, '$.url'))
            WHEN eventname = 'CreateBucket' THEN json_extract_scalar(req, '$.bucketName')
            WHEN eventname = 'CreateSecret' THEN coalesce(
                json_extract_scalar(resp, '$.aRN'), json_extract_scalar(req, '$.name'))
            WHEN eventname = 'CreateTrail' THEN json_extract_scalar(req, '$.name')
            WHEN eventname = 'CreateTrustAnchor' THEN json_extract_scalar(resp, '$.trustAnchor.trustAnchorId')
            WHEN eventname = 'CreateProfile' THEN json_extract_scalar(resp, '$.profile.profileId')
            WHEN eventname = 'CreateStack' THEN json_extract_scalar(resp, '$.stackId')
            WHEN eventname = 'CreateDBInstance' THEN json_extract_scalar(req, '$.dBInstanceIdentifier')
            WHEN eventname = 'CreateDBCluster' THEN json_extract_scalar(req, '$.dBClusterIdentifier')
        END AS resource_id,
        created.*
    FROM created
    WHERE eventname NOT IN ('RunInstances', 'RequestSpotInstances')
)
SELECT
    resource_type,
    resource_id,
    awsregion AS aws_region,
    eventname AS event_name,
    eventtime AS event_time,
    access_key_id,
    eventid AS event_id
FROM (
    SELECT * FROM instances
    UNION ALL
    SELECT * FROM spot_requests
    UNION ALL
    SELECT * FROM single
) AS resources
ORDER BY event_time, resource_type, resource_id
