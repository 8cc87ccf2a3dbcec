"""The ProposalDecisions feature: pending proposals, and approving or rejecting one with an e-signature.

The decision is the panel's own (ui.panel.decisions.decide): the same roles, the password as the
signature, a reason required, the Approval row sealed in the audit trail.
"""

from __future__ import annotations

from typing import Any

from sila2.framework import DefinedExecutionError, Feature
from sila2.server import FeatureImplementationBase, SilaServer
from sqlalchemy import Engine

from store.repositories import proposals
from ui.endpoints.sila.channels import iso_utc
from ui.endpoints.sila.signing import signed
from ui.panel.decisions import decide
from ui.panel.errors import NotAllowed, PanelError


class ProposalDecisionsImpl(FeatureImplementationBase):
    def __init__(self, parent_server: SilaServer, feature: Feature, engine: Engine) -> None:
        super().__init__(parent_server)
        self.feature = feature
        self.engine = engine

    def ListPending(self, *, metadata: Any) -> list[tuple[int, int, str, str]]:  # noqa: N802
        return [
            (int(p.id or 0), int(p.run_id or 0), p.design_json, iso_utc(p.created_utc_s))
            for p in proposals.pending(self.engine)
        ]

    def Approve(self, ProposalId: int, Reason: str, UserName: str, Password: str, *, metadata: Any) -> int:  # noqa: N802, N803
        return self._decide(ProposalId, "approve", Reason, UserName, Password)

    def Reject(self, ProposalId: int, Reason: str, UserName: str, Password: str, *, metadata: Any) -> int:  # noqa: N802, N803
        return self._decide(ProposalId, "reject", Reason, UserName, Password)

    def _decide(self, proposal_id: int, action: str, reason: str, user_name: str, password: str) -> int:
        errors = self.feature.defined_execution_errors
        try:
            who = signed(self.engine, user_name, password, "approve")
            return decide(self.engine, who, proposal_id, action, reason, password).approval_id
        except NotAllowed as exc:
            raise DefinedExecutionError(errors["NotAllowed"], str(exc)) from None
        except PanelError as exc:
            raise DefinedExecutionError(errors["DecisionRefused"], str(exc)) from None
