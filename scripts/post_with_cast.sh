#!/usr/bin/env bash
# Post a job with nothing but Foundry's `cast` and the deployment file: what any Ethereum client
# does to use the market (approve the reward, then postJob with the spec bytes and its keccak256).
#
#   RPC_URL=http://127.0.0.1:8545 DEPLOYMENT=.devnet/deployments/31337.json \
#   PRIVATE_KEY=0x...  scripts/post_with_cast.sh spec.json 1 [CHALLENGE_WINDOW_SECONDS]
#
# SPEC_FILE holds the canonical spec bytes (sorted keys, no whitespace: `depin job post --dry-run`
# prints them, or see "Job spec" in the README); REWARD is in tokens. Sign with PRIVATE_KEY (a devnet
# key: it ends up on cast's command line) or, on a testnet, CAST_ACCOUNT=<name of a cast keystore>.
# Prints the new job id.
set -euo pipefail
spec_file=${1:?usage: post_with_cast.sh SPEC_FILE REWARD_TOKENS [CHALLENGE_WINDOW]}
reward_tokens=${2:?usage: post_with_cast.sh SPEC_FILE REWARD_TOKENS [CHALLENGE_WINDOW]}
challenge_window=${3:-10}
: "${RPC_URL:?set RPC_URL}" "${DEPLOYMENT:?set DEPLOYMENT (deployments/<chainId>.json)}"
if [ -n "${CAST_ACCOUNT:-}" ]; then signer=(--account "$CAST_ACCOUNT"); else signer=(--private-key "${PRIVATE_KEY:?set PRIVATE_KEY or CAST_ACCOUNT}"); fi

field() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]))
for k in sys.argv[2:]: d=d[k]
print(d)' "$@"; }
market=$(field "$DEPLOYMENT" addresses JobMarket)
token=$(field "$DEPLOYMENT" addresses RewardToken)
spec=$(cat "$spec_file")
submit_window=$(( $(field "$spec_file" resources max_runtime) + 60 ))   # the run + 60 s to fetch, archive, submit
cpu_seconds=$(python3 -c 'import json,math,sys; r=json.load(open(sys.argv[1]))["resources"]; print(max(1, math.ceil(r["cpus"]*r["max_runtime"])))' "$spec_file")
reward=$(cast to-wei "$reward_tokens")

# JobTerms: (reward, claimWindow, maxRuntime = submit window, challengeWindow, collateralPct, cpuSeconds)
terms="($reward,3600,$submit_window,$challenge_window,50,$cpu_seconds)"
cast send --rpc-url "$RPC_URL" "${signer[@]}" "$token" 'approve(address,uint256)' "$market" "$reward" >/dev/null
receipt=$(cast send --json --rpc-url "$RPC_URL" "${signer[@]}" "$market" \
  'postJob(bytes32,bytes,(uint96,uint32,uint24,uint24,uint16,uint32))' \
  "$(cast keccak "$spec")" "$(cast from-utf8 "$spec")" "$terms")
# (cast --json exits 0 even when the call reverts at estimation: check that a receipt came back.)
if [ -z "$receipt" ]; then
  echo "error: postJob was not sent (cast's reason above; \`cast decode-error <data>\` names a custom error)" >&2
  exit 1
fi
# The job id is the first indexed topic of the JobPosted event in the receipt.
posted=$(cast sig-event 'JobPosted(uint256,address,bytes32,uint96,uint96,uint32,uint24,uint24,uint16,uint32,bytes)')
python3 -c 'import json,sys; r=json.loads(sys.argv[1])
if r["status"] not in ("0x1", 1): sys.exit("error: postJob reverted in transaction " + r["transactionHash"])
print(next(int(l["topics"][1],16) for l in r["logs"] if l["topics"][0]==sys.argv[2]))' "$receipt" "$posted"
