"""headwater's CrossGuard policy pack: ``pulumi preview --policy-pack policy``.

Every policy is one of :data:`headwater.policies.RULES`, registered with the rule's own
``validate`` function: the same code ``headwater plan`` runs on the mocked resources.
Every rule is mandatory: a violation fails the preview and the update.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from headwater.policies import pack_policies

PolicyPack(
    name="headwater",
    policies=pack_policies(),
    enforcement_level=EnforcementLevel.MANDATORY,
    description="headwater: no public storage, encryption at rest, TLS only, no IAM "
                "wildcards, dead-letters, log retention, no plain-text secrets, timeouts "
                "below queue visibility, no re-triggering outputs",
)
