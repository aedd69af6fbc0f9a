// SPDX-License-Identifier: MIT
pragma solidity 0.8.37;

import {IJobMarket} from "./IJobMarket.sol";
import {ICourtViews} from "./ICourtViews.sol";
import {IProviderStaking} from "./IProviderStaking.sol";
import {JobMarketState} from "./JobMarketState.sol";

/// @title The job market's governance code, run by JobMarket with DELEGATECALL
/// @notice Deployed by JobMarket's constructor. Called directly it acts on its own, empty storage,
///         where nobody holds a role: every call reverts. See JobMarketState.
contract JobMarketGovernance is JobMarketState {
    constructor(IProviderStaking staking_, uint16 drawDelay_, uint32 jobSlots_)
        JobMarketState(staking_, drawDelay_, jobSlots_)
    {}

    /// @notice IJobMarket.setParams, run by JobMarket with DELEGATECALL on the market's storage.
    function setParams(IJobMarket.MarketParams calldata p) external onlyRole(GOVERNOR_ROLE) {
        _checkParam("minClaimWindow", p.minClaimWindow, 1, MAX_CLAIM_WINDOW);
        _checkParam("maxClaimWindow", p.maxClaimWindow, p.minClaimWindow, MAX_CLAIM_WINDOW);
        _checkParam("minRuntime", p.minRuntime, 1, MAX_RUNTIME);
        if (p.maxRuntime > MAX_RUNTIME) revert IJobMarket.RuntimeAboveAuditable(p.maxRuntime, MAX_RUNTIME);
        _checkParam("maxRuntime", p.maxRuntime, p.minRuntime, MAX_RUNTIME);
        _checkParam("minChallengeWindow", p.minChallengeWindow, 1, MAX_CHALLENGE_WINDOW);
        _checkParam("maxChallengeWindow", p.maxChallengeWindow, p.minChallengeWindow, MAX_CHALLENGE_WINDOW);
        if (p.minCollateralPct < MIN_COLLATERAL_PCT) {
            revert IJobMarket.CollateralBelowJuryFloor(p.minCollateralPct, MIN_COLLATERAL_PCT);
        }
        _checkParam("maxCollateralPct", p.maxCollateralPct, p.minCollateralPct, MAX_COLLATERAL_PCT);
        if (p.alphaBps < MIN_ALPHA_BPS) revert IJobMarket.AlphaBelowFloor(p.alphaBps, MIN_ALPHA_BPS);
        _checkParam("feeBps", p.feeBps, MIN_FEE_BPS, MAX_FEE_BPS);
        if (p.kappaBps >= _BPS) revert IJobMarket.KappaNotBelowOne(p.kappaBps);
        _checkParam("betaBps", p.betaBps, 0, MAX_BETA_BPS);
        _checkParam("noFaultFeeBps", p.noFaultFeeBps, _MIN_NO_FAULT_FEE_BPS, MAX_NO_FAULT_FEE_BPS);
        if (p.drawDelay != _drawDelay) revert IJobMarket.DrawDelayFixed(p.drawDelay, _drawDelay);
        if (p.court.code.length == 0) revert IJobMarket.CourtNotContract(p.court);
        // C12 + the jury deposit: E = A + 3w with A >= 1.1 R (the court pays the auditor E - 3w).
        uint256 auditFloor = ICourtViews(p.court).minAuditFeeBps();
        if (p.auditFeeBps < auditFloor) revert IJobMarket.AuditFeeBelowFloor(p.auditFeeBps, auditFloor);
        _checkParam("auditFeeBps", p.auditFeeBps, MIN_AUDIT_FEE_BPS, MAX_AUDIT_FEE_BPS);
        // C6: a drawn verifier must hold sigma * R to sit, and the court admits members from
        // minStake: R above minStake / sigma could find no seat filled and settle Unaudited.
        _checkParam("maxReward", p.maxReward, 1, ICourtViews(p.court).maxVerifiableReward());
        uint256 required = ICourtViews(p.court).requiredChallengeWindow();
        if (p.minChallengeWindow < required) {
            revert IJobMarket.ChallengeWindowBelowCourt(p.minChallengeWindow, required);
        }
        uint256 horizon = _horizon(p.maxClaimWindow, p.maxRuntime, p.maxChallengeWindow, p.court);
        uint256 unbonding = _staking.unbondingDelay();
        if (unbonding < horizon) revert IJobMarket.UnbondingBelowHorizon(unbonding, horizon);

        uint24 version = _config.version + 1; // checked: 2^24 - 1 versions
        _config.version = version;
        _config.maxReward = p.maxReward;
        _bounds[version] = Bounds({
            minClaimWindow: p.minClaimWindow,
            maxClaimWindow: p.maxClaimWindow,
            minRuntime: p.minRuntime,
            maxRuntime: p.maxRuntime,
            minChallengeWindow: p.minChallengeWindow,
            maxChallengeWindow: p.maxChallengeWindow,
            minCollateralPct: p.minCollateralPct,
            maxCollateralPct: p.maxCollateralPct,
            alphaBps: p.alphaBps,
            feeBps: p.feeBps,
            kappaBps: p.kappaBps,
            auditFeeBps: p.auditFeeBps,
            betaBps: p.betaBps
        });
        _extras[version] = Extra({noFaultFeeBps: p.noFaultFeeBps, court: p.court, maxReward: p.maxReward});
        emit IJobMarket.MarketParamsUpdated(version, _paramsAt(version));
    }
}
