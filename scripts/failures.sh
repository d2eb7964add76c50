#!/usr/bin/env bash
# Prints, for a ctest log written with --output-on-failure, each test that did not pass with the
# first lines of its output. The test command calls it last, so that a failure deep in a long run
# is in the tail that a CI page shows.
#
#   scripts/failures.sh LOG [TITLE]
set -euo pipefail
log=$1
title=${2:-$1}
[[ -f $log ]] || exit 0
awk -v title="$title" '
  # A result line: "  12/750 Test  #5: Name ....   Passed  0.01 sec" (or ***Failed, Subprocess
  # aborted, ***Timeout, ***Exception, Not Run).
  /^ *[0-9]+\/[0-9]+ Test +#[0-9]+: / {
    showing = ($0 !~ / Passed +[0-9.]+ sec/ && $0 !~ / Skipped /)
    if (showing) {
      if (!found) print "==== tests that did not pass in " title
      found = 1
      lines = 0
      line = $0
      gsub(/ ?\.\.\.\.+ ?/, " ... ", line)
      print "---- " line
    }
    next
  }
  /^ +Start +[0-9]+: / { showing = 0; next }
  /^[0-9]+% tests passed/ { showing = 0 }
  showing && lines < 120 { print; lines++ }
  showing && lines == 120 { print "     (cut: the whole output is in " FILENAME ")"; lines++ }
' "$log"
