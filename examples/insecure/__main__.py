"""A deliberately insecure program: the example pipeline plus what a careless use of the
escape hatches adds. ``headwater plan`` and ``pulumi preview --policy-pack policy`` must
refuse it; the tests assert each message.

- a bucket policy that lets anyone read the raw objects (public access);
- a role policy granting ``s3:*`` on ``*`` to the pipeline's function (IAM wildcards);
- a bucket without a public access block, default encryption or a TLS-only policy;
- a literal API token in the function's environment (in ``Pulumi.insecure.yaml``).
"""

import json

import pulumi
import pulumi_aws as aws

from components import deploy

orders = deploy(pulumi.Config("headwater"))[0]
child = pulumi.ResourceOptions(parent=orders)

aws.s3.BucketPolicy("orders-public-read", bucket=orders.bucket.id, opts=child,
                    policy=orders.bucket.arn.apply(lambda arn: json.dumps({
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Principal": "*",
                                       "Action": "s3:GetObject", "Resource": f"{arn}/*"}]})))
aws.iam.RolePolicy("orders-admin", role=orders.role.id, opts=child, policy=json.dumps({
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
aws.s3.Bucket("scratch", bucket_prefix="scratch-", opts=child)
