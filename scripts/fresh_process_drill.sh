#!/usr/bin/env bash
# Every inference command of the three heads, twice each, in fresh processes over one numba cache that starts
# empty: the drill behind the fresh-process segfault (issue 10). Models use the default settings on the shipped
# data (one epoch; the LM on a slice of the shipped Brown text). Prints one line per run and a final count.
# Usage: bash scripts/fresh_process_drill.sh [WORK_DIR]   (needs the installed `winner` command)
set -uo pipefail
work=${1:-$(mktemp -d)}
mkdir -p "$work"
export NUMBA_CACHE_DIR="$work/numba-cache"
repo=$(cd "$(dirname "$0")/.." && pwd)
zcat "$repo/data/brown/train.tokens.txt.gz" | head -n 2000 > "$work/corpus.txt"
printf 'John Smith flew to Paris on Monday .\nThe United Nations met in New York .\n' > "$work/sentences.txt"
head -n 40 "$repo/data/wikigold/test.conll" > "$work/small.conll"

winner ner train --epochs 1 --quiet --out "$work/tagger" > /dev/null || exit 1
winner score train --epochs 1 --quiet --out "$work/scorer" > /dev/null || exit 1
winner lm train --corpus "$work/corpus.txt" --epochs 1 --quiet --out "$work/lm" > /dev/null || exit 1

passed=0 failed=0
drill() {  # name, then the command; stdin from $work/sentences.txt
    local name=$1; shift
    local first=""
    for run in 1 2; do
        out=$("$@" < "$work/sentences.txt" 2> "$work/stderr.txt"); rc=$?
        if [[ $rc -eq 0 && ( $run -eq 1 || "$out" == "$first" ) ]]; then
            passed=$((passed + 1)); echo "ok    exit $rc  run $run  $name"
        else
            failed=$((failed + 1)); echo "FAIL  exit $rc  run $run  $name: $(tail -n 1 "$work/stderr.txt")"
        fi
        first=$out
    done
}
drill "ner tag text stdin" winner ner tag "$work/tagger" -
drill "ner tag json file" winner ner tag "$work/tagger" "$work/sentences.txt" --format json
drill "ner evaluate 40 lines" winner ner evaluate "$work/tagger" --data "$work/small.conll"
drill "ner evaluate test" winner ner evaluate "$work/tagger" --data "$repo/data/wikigold/test.conll" --json
drill "score windows" winner score windows "$work/scorer" "Not all museums in Paris are amazing"
drill "score windows stdin" winner score windows "$work/scorer" -
drill "score evaluate 40 lines" winner score evaluate "$work/scorer" --data "$work/small.conll" --json
drill "score evaluate test" winner score evaluate "$work/scorer" --data "$repo/data/wikigold/test.conll"
drill "lm generate" winner lm generate "$work/lm" --prompt "the jury said" -n 20 --seed 1
drill "lm perplexity valid" winner lm perplexity "$work/lm" --json
drill "lm perplexity text" winner lm perplexity "$work/lm" --text "$work/sentences.txt" --json
drill "python tagger" python -c "import winner; print(winner.load('$work/tagger')('John lives in Paris.').to_json())"
drill "python lm" python -c "from winner.lm import generate_text; print(generate_text('$work/lm', 'the jury', 10, seed=2))"
echo "$passed passed, $failed failed"
[[ $failed -eq 0 ]]
