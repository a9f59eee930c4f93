# Shared by the benchmark scripts (sourced from the repository root).

# find_tool NAME: prints the path of a built NAME, release builds before debug ones; fails if none.
find_tool() {
  local candidate
  for candidate in .build/release/"$1" .build-*/release/"$1" .build/debug/"$1" .build-*/debug/"$1"; do
    if [ -x "$candidate" ]; then echo "$PWD/$candidate"; return 0; fi
  done
  return 1
}
