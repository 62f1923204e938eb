# Sourced by tests/run and tests/demo: a .venv with the plugin (editable) and what the tests and the
# sandbox need, first on PATH.
venv=.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -e '.[test,release]' -r tests/sandbox/requirements.txt
export PATH="$PWD/$venv/bin:$PATH"
