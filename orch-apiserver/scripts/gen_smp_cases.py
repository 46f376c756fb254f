#!/usr/bin/env python3
"""Extracts upstream's strategic merge patch test cases into a JSON fixture.

Source: k8s.io/apimachinery/pkg/util/strategicpatch/patch_test.go
(`createStrategicMergePatchTestCaseData` and `strategicMergePatchRawTestCases`).
Each case keeps its YAML texts verbatim; the Rust test parses them.

Usage: gen_smp_cases.py APIMACHINERY_CHECKOUT > orch-apiserver/src/patch/testdata/upstream_cases.json
"""
import json
import re
import sys

src = open(sys.argv[1] + "/pkg/util/strategicpatch/patch_test.go", encoding="utf-8").read()

out = {"yamlCases": None, "rawCases": []}
m = re.search(r"var createStrategicMergePatchTestCaseData = \[\]byte\(`(.*?)`\)", src, re.S)
out["yamlCases"] = m.group(1)

start = src.index("var strategicMergePatchRawTestCases = []StrategicMergePatchRawTestCase{")
end = src.index("\nfunc TestStrategicMergePatch(", start)
body = src[start:end]
# Split on each case's Description.
parts = re.split(r'\n\t\{\n\t\tDescription: ', body)[1:]
for p in parts:
    desc = json.loads(re.match(r'("(?:[^"\\]|\\.)*")', p).group(1))
    case = {"description": desc}
    for field, text in re.findall(r"\b(Original|Modified|Current|TwoWay|ThreeWay|Result|TwoWayResult): \[\]byte\(`(.*?)`\)", p, re.S):
        case[field[0].lower() + field[1:]] = text
    e = re.search(r'ExpectedError: "((?:[^"\\]|\\.)*)"', p)
    if e:
        case["expectedError"] = e.group(1)
    out["rawCases"].append(case)

json.dump(out, sys.stdout, indent=1)
print()
