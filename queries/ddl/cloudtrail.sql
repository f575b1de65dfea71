/*
The Athena table every query in queries/ reads: CloudTrail's standard columns (as in the Athena
user guide, "Create the table for CloudTrail logs in Athena using partition projection") over a
trail bucket, with partition projection so that an incident scans only its accounts, regions and
days, for an account trail or an organization trail.

Rendered by keyresponse.queries.render_ddl, which fills the {{...}} values (checked, never free
text): database, table, bucket, logs_prefix (the key prefix before the account id: "AWSLogs/",
or "<prefix>/AWSLogs/o-xxxxxxxxxx/" for an organization trail), accounts and regions
(comma-separated), start_day (yyyy/MM/dd). The ${...} are Athena's own projection variables.

Partition columns: account, region, "timestamp" ('yyyy/MM/dd'). Queries bound "timestamp" with
BETWEEN, and Athena prunes partitions by projection instead of listing S3.
*/
CREATE EXTERNAL TABLE IF NOT EXISTS {{database}}.{{table}} (
    eventversion STRING,
    useridentity STRUCT<
        type: STRING,
        principalid: STRING,
        arn: STRING,
        accountid: STRING,
        invokedby: STRING,
        accesskeyid: STRING,
        username: STRING,
        onbehalfof: STRUCT<
            userid: STRING,
            identitystorearn: STRING>,
        sessioncontext: STRUCT<
            attributes: STRUCT<
                mfaauthenticated: STRING,
                creationdate: STRING>,
            sessionissuer: STRUCT<
                type: STRING,
                principalid: STRING,
                arn: STRING,
                accountid: STRING,
                username: STRING>,
            ec2roledelivery: STRING,
            webidfederationdata: STRUCT<
                federatedprovider: STRING,
                attributes: MAP<STRING, STRING>>>>,
    eventtime STRING,
    eventsource STRING,
    eventname STRING,
    awsregion STRING,
    sourceipaddress STRING,
    useragent STRING,
    errorcode STRING,
    errormessage STRING,
    requestparameters STRING,
    responseelements STRING,
    additionaleventdata STRING,
    requestid STRING,
    eventid STRING,
    readonly STRING,
    resources ARRAY<STRUCT<
        arn: STRING,
        accountid: STRING,
        type: STRING>>,
    eventtype STRING,
    apiversion STRING,
    recipientaccountid STRING,
    serviceeventdetails STRING,
    sharedeventid STRING,
    vpcendpointid STRING,
    vpcendpointaccountid STRING,
    eventcategory STRING,
    addendum STRUCT<
        reason: STRING,
        updatedfields: STRING,
        originalrequestid: STRING,
        originaleventid: STRING>,
    sessioncredentialfromconsole STRING,
    edgedevicedetails STRING,
    tlsdetails STRUCT<
        tlsversion: STRING,
        ciphersuite: STRING,
        clientprovidedhostheader: STRING>
)
COMMENT 'CloudTrail management and data events (keyresponse)'
PARTITIONED BY (account STRING, region STRING, `timestamp` STRING)
ROW FORMAT SERDE 'org.apache.hive.hcatalog.data.JsonSerDe'
STORED AS INPUTFORMAT 'com.amazon.emr.cloudtrail.CloudTrailInputFormat'
OUTPUTFORMAT 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat'
LOCATION 's3://{{bucket}}/{{logs_prefix}}'
TBLPROPERTIES (
    'classification' = 'cloudtrail',
    'projection.enabled' = 'true',
    'projection.account.type' = 'enum',
    'projection.account.values' = '{{accounts}}',
    'projection.region.type' = 'enum',
    'projection.region.values' = '{{regions}}',
    'projection.timestamp.type' = 'date',
    'projection.timestamp.format' = 'yyyy/MM/dd',
    'projection.timestamp.range' = '{{start_day}},NOW',
    'projection.timestamp.interval' = '1',
    'projection.timestamp.interval.unit' = 'DAYS',
    'storage.location.template' = 's3://{{bucket}}/{{logs_prefix}}${account}/CloudTrail/${region}/${timestamp}'
)
