// The chat-template interpreter on its own: expressions, filters, tests, whitespace control,
// loops, namespaces, macros, errors with positions, every resource limit and malformed templates
// (errors, never crashes). Chat templates on it: tests/unit/chat/template_test.cc.
#include <gtest/gtest.h>

#include <string>

#include "jinja/interpreter.h"

namespace gannet {
namespace {

using jinja::Value;

Result<std::string> RenderWith(std::string_view src, const jinja::Dict& globals,
                               const jinja::RenderLimits& limits = {}) {
  GANNET_ASSIGN_OR_RETURN(auto t, jinja::ParseTemplate(src, "t", jinja::ParseOptions{}));
  return jinja::Render(*t, globals, limits);
}

std::string R(std::string_view src, const jinja::Dict& globals = {}) {
  Result<std::string> r = RenderWith(src, globals);
  return r.ok() ? *r : "ERROR: " + r.status().message();
}

Status Err(std::string_view src, const jinja::RenderLimits& limits = {}) {
  Result<std::string> r = RenderWith(src, {}, limits);
  return r.ok() ? Status::Ok() : r.status();
}

TEST(Jinja, Literals) {
  EXPECT_EQ(R("{{ 1 }} {{ 1.5 }} {{ 'a' }} {{ \"b\" }} {{ true }} {{ none }} {{ [1, 'x'] }} {{ "
              "{'k': (1, 2)} }}"),
            "1 1.5 a b True None [1, 'x'] {'k': (1, 2)}");
  EXPECT_EQ(R("{{ 1e20 }} {{ 0.0001 }} {{ 1e-5 }} {{ 10 / 4 }} {{ 2.0 }}"),
            "1e+20 0.0001 1e-05 2.5 2.0");
  EXPECT_EQ(R("{{ 'a\\nb\\t\\u00e9\\x41' }}"),
            "a\nb\t\xC3\xA9"
            "A");
  EXPECT_EQ(R("{{ \"it's\" }}|{{ [\"it's\"] }}"), "it's|[\"it's\"]");
}

TEST(Jinja, Operators) {
  EXPECT_EQ(
      R("{{ 7 // 2 }} {{ -7 // 2 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }}"),
      "3 -4 2 1024 7 9");
  EXPECT_EQ(R("{{ 'a' + 'b' }} {{ 'a' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}"),
            "ab a1None ababab [1, 2]");
  EXPECT_EQ(
      R("{{ 1 < 2 < 3 }} {{ 1 == 1.0 }} {{ 'a' != 'b' }} {{ 'b' in 'abc' }} {{ 3 not in [1, 2] }}"),
      "True True True True True");
  EXPECT_EQ(R("{{ 0 or 'x' }} {{ 1 and 2 }} {{ not 0 }} {{ 'y' if false else 'n' }} {{ -(3) }}"),
            "x 2 True n -3");
  EXPECT_EQ(R("{{ {'a': 1} == {'a': 1.0} }} {{ [1, [2]] == [1, [2]] }}"), "True True");
}

TEST(Jinja, SubscriptsAndSlices) {
  jinja::Dict g;
  g.items.emplace_back("s", Value::Str("h\xC3\xA9llo"));
  EXPECT_EQ(R("{{ s[1] }} {{ s[-1] }} {{ s[::-1] }} {{ s[1:3] }} {{ s|length }}", g),
            "\xC3\xA9 o oll\xC3\xA9h \xC3\xA9l 5");
  EXPECT_EQ(
      R("{{ [1,2,3,4][1:] }} {{ [1,2,3,4][::2] }} {{ [1,2,3][5] }}|{{ {'a': {'b': 2}}.a.b }}"),
      "[2, 3, 4] [1, 3] |2");
}

TEST(Jinja, StringMethods) {
  EXPECT_EQ(R("{{ '  x '.strip() }}|{{ 'xxay'.lstrip('x') }}|{{ 'a\\n\\n'.rstrip('\\n') }}|{{ "
              "'ab'.upper() }}"),
            "x|ay|a|AB");
  EXPECT_EQ(R("{{ 'a,b,,c'.split(',') }} {{ ' a  b '.split() }} {{ 'a b c'.split(' ', 1) }}"),
            "['a', 'b', '', 'c'] ['a', 'b'] ['a', 'b c']");
  EXPECT_EQ(R("{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'aXa'.replace('a', "
              "'b') }}"),
            "True True bXb");
  EXPECT_EQ(R("{{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ 'abc'.find('c') }}"),
            "Hello World Hello 2");
  EXPECT_EQ(R("{{ {'a': 1}.get('a') }} {{ {'a': 1}.get('b', 'd') }} {{ {'a': 1}.items()|list }} {{ "
              "{'a': 1}.keys()|list }}"),
            "1 d [('a', 1)] ['a']");
}

TEST(Jinja, Filters) {
  EXPECT_EQ(R("{{ ' x '|trim }}|{{ 'Ab'|lower }}|{{ 'ab'|upper }}|{{ [1,2]|length }}|{{ "
              "[1,2]|join('-') }}"),
            "x|ab|AB|2|1-2");
  EXPECT_EQ(R("{{ x|default('d') }} {{ ''|default('d', true) }} {{ [3,4]|first }} {{ [3,4]|last }} "
              "{{ 'ab'|list }}"),
            "d d 3 4 ['a', 'b']");
  EXPECT_EQ(R("{{ '12'|int + 1 }} {{ 'x'|int }} {{ '1.5'|float }} {{ 3|string + 'a' }} {{ {'a': "
              "1}|items|list }}"),
            "13 0 1.5 3a [('a', 1)]");
  EXPECT_EQ(R("{{ {'b': 'é', 'a': [1, 2.5, none, true]}|tojson }}"),
            "{\"b\": \"é\", \"a\": [1, 2.5, null, true]}");
  EXPECT_EQ(R("{{ {'a': [1]}|tojson(indent=2) }}"), "{\n  \"a\": [\n    1\n  ]\n}");
  EXPECT_EQ(R("{{ 'a\"\\n'|tojson }}"), "\"a\\\"\\n\"");
  jinja::Dict g;
  jinja::List msgs;
  for (const char* role : {"user", "assistant", "user"}) {
    jinja::Dict m;
    m.items.emplace_back("role", Value::Str(role));
    msgs.push_back(Value::MakeDict(std::move(m)));
  }
  g.items.emplace_back("m", Value::MakeList(std::move(msgs)));
  EXPECT_EQ(R("{{ m|selectattr('role', 'equalto', 'user')|list|length }} {{ m|rejectattr('role', "
              "'eq', 'user')|list|length }} "
              "{{ m|map(attribute='role')|join(',') }} {{ [' a', 'b ']|map('trim')|list }}",
              g),
            "2 1 user,assistant,user ['a', 'b']");
  EXPECT_EQ(R("{{ [3, 1, 2]|sort }} {{ [1, 1, 2]|unique|list }} {{ [1, 2]|reverse|list }} {{ 'ab "
              "c'|wordcount }}"),
            "[1, 2, 3] [1, 2] [2, 1] 2");
  EXPECT_EQ(R("{% filter upper %}ab{% endfilter %}"), "AB");
}

TEST(Jinja, Tests) {
  EXPECT_EQ(R("{{ x is defined }} {{ x is undefined }} {{ none is none }} {{ 'a' is string }} {{ 1 "
              "is number }}"),
            "False True True True True");
  EXPECT_EQ(R("{{ {} is mapping }} {{ [] is iterable }} {{ 'a' is sequence }} {{ 1 is not string "
              "}} {{ 4 is even }}"),
            "True True True True True");
  EXPECT_EQ(R("{{ 6 is divisibleby 3 }} {{ 'a' is eq 'a' }} {{ 'a' is in ['a'] }} {{ true is "
              "boolean }} {{ 1 is integer }}"),
            "True True True True True");
}

TEST(Jinja, WhitespaceControl) {
  EXPECT_EQ(R("a  {{- 'b' -}}  c"), "abc");
  // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
  EXPECT_EQ(R("x\n  {% if true %}\n  y\n  {% endif %}\nz\n"), "x\n  y\nz");
  EXPECT_EQ(R("{# comment #}\nA"), "A");
  EXPECT_EQ(R("  {%+ if true %}k{% endif %}"), "  k");
  EXPECT_EQ(R("{% if true +%}\nk{% endif %}"), "\nk");
  EXPECT_EQ(R("{{ 'a' }}\nb"), "a\nb");
  EXPECT_EQ(R("{% raw %}{{ not parsed }}{% endraw %}"), "{{ not parsed }}");
  EXPECT_EQ(R("a\r\nb\n"), "a\nb");
}

TEST(Jinja, Loops) {
  EXPECT_EQ(R("{% for x in [1,2,3] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ "
              "loop.first }}{{ loop.last }}{{ loop.length }};{% endfor %}"),
            "103TrueFalse3;212FalseFalse3;321FalseTrue3;");
  EXPECT_EQ(R("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(R("{% for x in [1,2,3,4] if x is even %}{{ x }}{{ loop.length }}{% endfor %}"), "2242");
  EXPECT_EQ(R("{% for k, v in {'a': 1, 'b': 2}.items() %}{{ k }}={{ v }},{% endfor %}"),
            "a=1,b=2,");
  EXPECT_EQ(R("{% for x in [1,2,3,4] %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 4 %}{% "
              "break %}{% endif %}{{ x }}{% endfor %}"),
            "13");
  EXPECT_EQ(R("{% for x in range(3) %}{{ loop.cycle('a', 'b') }}{{ x }}{% endfor %}"), "a0b1a2");
  // A variable set inside a loop does not leak out of it (Jinja scoping).
  EXPECT_EQ(R("{% set y = 0 %}{% for x in [1] %}{% set y = 5 %}{% endfor %}{{ y }}"), "0");
}

TEST(Jinja, NamespaceSetAndMacros) {
  EXPECT_EQ(R("{% set ns = namespace(n=0) %}{% for x in [1,2,3] %}{% set ns.n = ns.n + x %}{% "
              "endfor %}{{ ns.n }}"),
            "6");
  EXPECT_EQ(R("{% set ns = namespace() %}{% set ns.a = 'z' %}{{ ns.a }}"), "z");
  EXPECT_EQ(R("{% set a, b = 1, 2 %}{{ a }}{{ b }}{% set c %}blk{{ a }}{% endset %}{{ c }}"),
            "12blk1");
  EXPECT_EQ(R("{% macro greet(name, p='!') %}hi {{ name }}{{ p }}{% endmacro %}{{ greet('x') }} {{ "
              "greet('y', p='?') }}"),
            "hi x! hi y?");
  EXPECT_EQ(R("{% generation %}g{% endgeneration %}"), "g");
  // A namespace holding itself renders (and, under ASan, does not leak).
  EXPECT_EQ(R("{% set ns = namespace() %}{% set ns.me = ns %}{% set ns.d = {'n': ns} %}{{ "
              "ns.me.me.d.n is defined }}"),
            "True");
}

TEST(Jinja, ErrorsNameLineAndColumn) {
  Status s = Err("line one\n{{ x.y }}");
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("template 't', line 2, column"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("'x' is undefined"), std::string::npos) << s.message();
  s = Err("{% if true %}\n  {{ 1 + 'a' }}{% endif %}");
  EXPECT_NE(s.message().find("line 2, column 8"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("unsupported operand"), std::string::npos) << s.message();
  s = Err("{{ raise_it() }}");
  EXPECT_FALSE(s.ok());
  for (const char* bad : {"{{ 1 ",
                          "{% if x %}",
                          "{% for %}",
                          "{{ 'abc }}",
                          "{# no end",
                          "{% endif %}",
                          "{% include 'x.j2' %}",
                          "{% import 'x' as y %}",
                          "{% extends 'b' %}",
                          "{{ 1 + }}",
                          "{{ [1, 2 }}",
                          "{% set %}",
                          "{% macro m( %}{% endmacro %}",
                          "{{ a | }}",
                          "{% break %}",
                          "{% for x in y %}{% endif %}",
                          "{{ \x01 }}",
                          "{% raw %}abc",
                          "{% %}",
                          "{{ }}"}) {
    Result<std::string> r = RenderWith(bad, {});
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_NE(r.status().message().find("line 1, column"), std::string::npos)
          << r.status().message();
    }
  }
  Status inc = Err("{% include 'secret.txt' %}");
  EXPECT_NE(inc.message().find("cannot load other templates"), std::string::npos) << inc.message();
}

// Work a render can be made to do without producing much: empty operands repeated, one big string
// shared by 200k list entries (a list of references costs the template little), and
// quadratic substring searches. Each is either answered cheaply or stopped by a limit.
TEST(Jinja, CheapValuesCannotBuyUnboundedWork) {
  const auto exhausted = [](std::string_view src) {
    const Status s = Err(src);
    return s.code() == StatusCode::kResourceExhausted ? "exhausted"
                                                      : "not exhausted: " + s.ToString();
  };
  // Zero-length operands: nothing to build, whatever the count.
  EXPECT_EQ(R("{{ ('' * 10**18) | length }}|{{ ([] * 10**18) | length }}|{{ 10**18 * '' }}"),
            "0|0|");
  const std::string big = "{% set s = 'a' * 4000000 %}{% set l = [s] * 200000 %}";
  // Filters that do not need the value's text do not build it.
  EXPECT_EQ(R(big + "{{ l | length }} {{ l | first | length }} {{ l | last == s }}"),
            "200000 4000000 True");
  EXPECT_EQ(exhausted(big + "{{ l }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l ~ '' }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l | string }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l | upper }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l | tojson }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l | join }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l == l }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l is eq(l) }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{% set t = 'a' * 3999999 ~ 'b' %}{{ t in l }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{% set t = 'a' * 3999999 ~ 'b' %}{{ l.count(t) }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l | unique | length }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ l | sort | length }}"), "exhausted");
  EXPECT_EQ(exhausted(big + "{{ [l, l] | sort | length }}"), "exhausted");
  // Substring search is linear: a needle of 2 MB that almost matches everywhere in 4 MB.
  const std::string hay = "{% set h = 'a' * 4000000 %}{% set n = 'a' * 2000000 ~ 'b' %}";
  EXPECT_EQ(R(hay + "{{ n in h }} {{ h.find(n) }} {{ h.rfind(n) }} {{ h.count(n) }} "
                    "{{ h.replace(n, 'x') | length }} {{ h.split(n) | length }}"),
            "False -1 -1 0 4000000 1");
}

TEST(Jinja, Limits) {
  jinja::RenderLimits small;
  small.max_string_bytes = 1000;
  Status s = Err("{{ 'a' * 10**9 }}", small);
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted) << s.ToString();
  EXPECT_EQ(Err("{{ 'a' * 10**9 }}").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Err("{{ [1] * 10**9 }}").code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(Err("{% for i in range(10**9) %}{% endfor %}").code(), StatusCode::kResourceExhausted);
  jinja::RenderLimits loops;
  loops.max_loop_iterations = 1000;
  EXPECT_EQ(Err("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", loops)
                .code(),
            StatusCode::kResourceExhausted);
  jinja::RenderLimits out;
  out.max_output_bytes = 100;
  EXPECT_EQ(Err("{% for i in range(1000) %}xx{% endfor %}", out).code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(Err("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}").code(),
            StatusCode::kResourceExhausted);
  jinja::RenderLimits work;
  work.max_work = 10000;
  EXPECT_EQ(Err("{% set ns = namespace(s='') %}{% for i in range(1000) %}{% set ns.s = ns.s ~ "
                "'abcdefgh' %}{% endfor %}",
                work)
                .code(),
            StatusCode::kResourceExhausted);
  EXPECT_EQ(Err("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] "
                "%}{% endfor %}"
                "{{ ns.x == ns.x }}")
                .code(),
            StatusCode::kResourceExhausted);
  EXPECT_FALSE(Err("{{ 2 ** 64 }}").ok());  // integer overflow is an error, not UB
  EXPECT_FALSE(Err("{{ 1 // 0 }}").ok());
  // Nesting too deep for the parser: an error, not a stack overflow.
  EXPECT_FALSE(Err("{{ " + std::string(100000, '(') + "1" + std::string(100000, ')') + " }}").ok());
  EXPECT_FALSE(Err("{{ " + std::string(100000, '-') + "1 }}").ok());
  std::string chain = "{{ 1";
  for (int i = 0; i < 100000; ++i) chain += " + 1";
  EXPECT_FALSE(Err(chain + " }}").ok());
  std::string nested;
  for (int i = 0; i < 10000; ++i) nested += "{% if true %}";
  EXPECT_FALSE(Err(nested).ok());
}

}  // namespace
}  // namespace gannet
