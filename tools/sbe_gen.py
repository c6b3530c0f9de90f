#!/usr/bin/env python3
"""SBE code generator for tensorpool.

Reads our SBE schema files (schemas/*.xml) and writes, for each schema NAME (the tpName attribute):
  tp_sbe_NAME.h  enum constants and validity checks, field offsets, typed decoders (views), typed encoders
  tp_sbe_NAME.c  the metadata tables the runtime (src/wire/tp_sbe.c) walks
and one tp_sbe_registry.c listing every schema.

Only the Python standard library is used. The output is never edited by hand; the build reruns this script
whenever a schema or the script changes.

Supported SBE: little-endian schemas; primitive fields (u/int 8..64), named simple types, fixed arrays,
constants, enums, optional fields with nullValue, repeating groups (nested too) with fields, groups and
var-data, and var-data with a u32 length prefix. Anything else (sets, composites as fields, sinceVersion,
floating point, char arrays) is refused with an error naming the schema element.
"""
import argparse
import os
import re
import sys
import xml.etree.ElementTree as ET

PRIMS = {
    'uint8': ('TP_SBE_U8', 'uint8_t', 1, False),
    'int8': ('TP_SBE_I8', 'int8_t', 1, True),
    'uint16': ('TP_SBE_U16', 'uint16_t', 2, False),
    'int16': ('TP_SBE_I16', 'int16_t', 2, True),
    'uint32': ('TP_SBE_U32', 'uint32_t', 4, False),
    'int32': ('TP_SBE_I32', 'int32_t', 4, True),
    'uint64': ('TP_SBE_U64', 'uint64_t', 8, False),
    'int64': ('TP_SBE_I64', 'int64_t', 8, True),
}

# SBE's default null values, used when an optional field declares none.
DEFAULT_NULL = {
    'uint8': 0xFF, 'int8': -128, 'uint16': 0xFFFF, 'int16': -32768,
    'uint32': 0xFFFFFFFF, 'int32': -2**31, 'uint64': 2**64 - 1, 'int64': -2**63,
}

MAX_GROUPS = 4
MAX_VARS = 4


class GenError(Exception):
    pass


def local(tag):
    return tag.split('}', 1)[-1]


def snake(name):
    s = re.sub(r'([a-z0-9])([A-Z])', r'\1_\2', name)
    s = re.sub(r'([A-Z]+)([A-Z][a-z])', r'\1_\2', s)
    return s.lower()


def bits_of(value, prim):
    size = PRIMS[prim][2]
    return value & ((1 << (size * 8)) - 1)


class Enum:
    def __init__(self, el, schema):
        self.name = el.get('name')
        self.encoding = el.get('encodingType')
        if self.encoding not in PRIMS:
            raise GenError(f'{schema}: enum {self.name}: encodingType {self.encoding} is not supported')
        self.values = [(v.get('name'), int(v.text.strip())) for v in el if local(v.tag) == 'validValue']


class SimpleType:
    def __init__(self, el, schema):
        self.name = el.get('name')
        self.prim = el.get('primitiveType')
        if self.prim not in PRIMS:
            raise GenError(f'{schema}: type {self.name}: primitiveType {self.prim} is not supported')
        self.length = int(el.get('length', '1'))
        self.presence = el.get('presence', 'required')
        self.constant = int(el.text.strip()) if self.presence == 'constant' else None
        self.null_value = el.get('nullValue')


class VarEncoding:
    def __init__(self, el, schema):
        self.name = el.get('name')
        parts = {t.get('name'): t for t in el if local(t.tag) == 'type'}
        length = parts.get('length')
        data = parts.get('varData')
        if length is None or data is None or length.get('primitiveType') != 'uint32':
            raise GenError(f'{schema}: composite {self.name}: only u32-length var-data composites are supported')
        self.max_length = int(length.get('maxValue', str(2**30)))
        self.is_ascii = data.get('characterEncoding') is not None


class Field:
    def __init__(self, el, schema, types, where):
        self.name = el.get('name')
        self.id = int(el.get('id'))
        tname = el.get('type')
        if el.get('sinceVersion') is not None:
            raise GenError(f'{where}.{self.name}: sinceVersion is not supported')
        self.enum = None
        self.length = 1
        self.constant = None
        self.presence = el.get('presence', 'required')
        null_attr = el.get('nullValue')
        if tname in PRIMS:
            self.prim = tname
        elif tname in types['enums']:
            self.enum = types['enums'][tname]
            self.prim = self.enum.encoding
        elif tname in types['simple']:
            t = types['simple'][tname]
            self.prim = t.prim
            self.length = t.length
            if t.presence == 'constant':
                self.presence = 'constant'
                self.constant = t.constant
            if null_attr is None:
                null_attr = t.null_value
        else:
            raise GenError(f'{where}.{self.name}: type {tname} is not supported for a field')
        if self.presence not in ('required', 'optional', 'constant'):
            raise GenError(f'{where}.{self.name}: presence {self.presence} is not supported')
        if self.presence == 'optional':
            nv = int(null_attr) if null_attr is not None else DEFAULT_NULL[self.prim]
            self.null_bits = bits_of(nv, self.prim)
        else:
            self.null_bits = 0
        self.size = 0 if self.presence == 'constant' else PRIMS[self.prim][2] * self.length
        self.offset = None


class Var:
    def __init__(self, el, types, where):
        self.name = el.get('name')
        self.id = int(el.get('id'))
        tname = el.get('type')
        if tname not in types['var']:
            raise GenError(f'{where}.{self.name}: var-data type {tname} is not a u32 var-data composite')
        self.enc = types['var'][tname]


class Body:
    """A message body or a group entry."""

    def __init__(self, el, schema, types, where, declared_block=None):
        self.where = where
        self.fields = []
        self.groups = []
        self.vars = []
        offset = 0
        for child in el:
            tag = local(child.tag)
            if tag == 'field':
                if self.groups or self.vars:
                    raise GenError(f'{where}: field {child.get("name")} after a group or var-data')
                f = Field(child, schema, types, where)
                f.offset = offset
                offset += f.size
                self.fields.append(f)
            elif tag == 'group':
                if self.vars:
                    raise GenError(f'{where}: group {child.get("name")} after var-data')
                g = Group(child, schema, types, f'{where}.{child.get("name")}')
                self.groups.append(g)
            elif tag == 'data':
                self.vars.append(Var(child, types, where))
        self.block_length = int(declared_block) if declared_block is not None else offset
        if self.block_length < offset:
            raise GenError(f'{where}: blockLength {self.block_length} is smaller than its fields ({offset})')
        if len(self.groups) > MAX_GROUPS or len(self.vars) > MAX_VARS:
            raise GenError(f'{where}: more than {MAX_GROUPS} groups or {MAX_VARS} var-data in one body')


class Group:
    def __init__(self, el, schema, types, where):
        self.name = el.get('name')
        self.id = int(el.get('id'))
        if el.get('dimensionType', 'groupSizeEncoding') != 'groupSizeEncoding':
            raise GenError(f'{where}: only groupSizeEncoding is supported')
        self.body = Body(el, schema, types, where, el.get('blockLength'))


class Message:
    def __init__(self, el, schema, types):
        self.name = el.get('name')
        self.id = int(el.get('id'))
        self.headerless = el.get('tpHeaderless', 'false') == 'true'
        self.body = Body(el, schema, types, f'{schema}.{self.name}', el.get('blockLength'))


class Schema:
    def __init__(self, path):
        root = ET.parse(path).getroot()
        self.path = path
        self.name = root.get('tpName') or os.path.splitext(os.path.basename(path))[0]
        if not re.fullmatch(r'[a-z][a-z0-9]*', self.name):
            raise GenError(f'{path}: tpName must be a lower-case identifier')
        self.package = root.get('package')
        self.id = int(root.get('id'))
        self.version = int(root.get('version', '0'))
        if root.get('byteOrder', 'littleEndian') != 'littleEndian':
            raise GenError(f'{path}: only littleEndian schemas are supported')
        types = {'enums': {}, 'simple': {}, 'var': {}}
        for t in root.iter():
            if local(t.tag) != 'types':
                continue
            for el in t:
                tag = local(el.tag)
                if tag == 'enum':
                    types['enums'][el.get('name')] = Enum(el, path)
                elif tag == 'type':
                    types['simple'][el.get('name')] = SimpleType(el, path)
                elif tag == 'composite':
                    if el.get('name') in ('messageHeader', 'groupSizeEncoding'):
                        continue
                    types['var'][el.get('name')] = VarEncoding(el, path)
                else:
                    raise GenError(f'{path}: <{tag}> types are not supported')
        self.enums = list(types['enums'].values())
        # constants declared as types of their own (e.g. a schema version for diagnostics), not only as fields
        self.constants = [t for t in types['simple'].values() if t.presence == 'constant']
        self.messages = [Message(m, self.name, types) for m in root if local(m.tag) == 'message']
        ids = [m.id for m in self.messages]
        if len(ids) != len(set(ids)):
            raise GenError(f'{path}: duplicate template ids')


def c_literal_u64(v):
    return f'UINT64_C({v})'


def c_literal_i64(v):
    if v == -2**63:
        return 'INT64_MIN'
    return f'INT64_C({v})'


class Writer:
    def __init__(self):
        self.lines = []

    def __call__(self, s=''):
        self.lines.append(s)

    def text(self):
        return '\n'.join(self.lines) + '\n'


def gen_meta_body(w, s, body, cname):
    """Emit metadata for a body and its nested groups; returns the C expression initialising tp_sbe_body_meta_t."""
    for g in body.groups:
        gen_meta_body(w, s, g.body, f'{cname}_{snake(g.name)}')
    if body.fields:
        w(f'static const tp_sbe_field_meta_t {cname}_fields[] = {{')
        for f in body.fields:
            enum_ref = f'&tp_{s.name}_{snake(f.enum.name)}_meta' if f.enum else 'NULL'
            presence = {'required': 'TP_SBE_REQUIRED', 'optional': 'TP_SBE_OPTIONAL',
                        'constant': 'TP_SBE_CONSTANT'}[f.presence]
            const = c_literal_i64(f.constant) if f.constant is not None else 'INT64_C(0)'
            w(f'    {{ "{f.name}", {f.id}, {PRIMS[f.prim][0]}, {presence}, {f.offset}, {f.length}, '
              f'{c_literal_u64(f.null_bits)}, {const}, {enum_ref} }},')
        w('};')
    if body.groups:
        w(f'static const tp_sbe_body_meta_t {cname}_group_bodies[] = {{')
        for g in body.groups:
            w(f'    {body_init(g.body, f"{cname}_{snake(g.name)}")},')
        w('};')
        w(f'static const tp_sbe_group_meta_t {cname}_groups[] = {{')
        for i, g in enumerate(body.groups):
            w(f'    {{ "{g.name}", {g.id}, &{cname}_group_bodies[{i}] }},')
        w('};')
    if body.vars:
        w(f'static const tp_sbe_var_meta_t {cname}_vars[] = {{')
        for v in body.vars:
            w(f'    {{ "{v.name}", {v.id}, {"true" if v.enc.is_ascii else "false"}, {v.enc.max_length}u }},')
        w('};')


def body_init(body, cname):
    fields = f'{cname}_fields' if body.fields else 'NULL'
    groups = f'{cname}_groups' if body.groups else 'NULL'
    vars_ = f'{cname}_vars' if body.vars else 'NULL'
    return (f'{{ {body.block_length}, {len(body.fields)}, {len(body.groups)}, {len(body.vars)}, '
            f'{fields}, {groups}, {vars_} }}')


def gen_source(s):
    w = Writer()
    w(f'/* Generated by tools/sbe_gen.py from {os.path.basename(s.path)}. Do not edit. */')
    w(f'#include "tp_sbe_{s.name}.h"')
    w()
    for e in s.enums:
        en = f'tp_{s.name}_{snake(e.name)}'
        w(f'static const char *const {en}_names[] = {{ {", ".join(chr(34) + n + chr(34) for n, _ in e.values)} }};')
        w(f'static const int64_t {en}_values[] = {{ {", ".join(c_literal_i64(v) for _, v in e.values)} }};')
        w(f'const tp_sbe_enum_meta_t {en}_meta = {{ "{e.name}", {PRIMS[e.encoding][0]}, {len(e.values)}, '
          f'{en}_names, {en}_values }};')
        w()
    for m in s.messages:
        cname = f'tp_{s.name}_{snake(m.name)}'
        gen_meta_body(w, s, m.body, f'{cname}_b')
        w(f'const tp_sbe_message_meta_t {cname}_meta = {{ "{m.name}", {s.id}, {s.version}, {m.id}, '
          f'{"true" if m.headerless else "false"}, {body_init(m.body, f"{cname}_b")} }};')
        w()
    w(f'static const tp_sbe_message_meta_t *const tp_{s.name}_messages[] = {{')
    for m in s.messages:
        w(f'    &tp_{s.name}_{snake(m.name)}_meta,')
    w('};')
    w(f'const tp_sbe_schema_meta_t tp_{s.name}_schema_meta = {{ "{s.name}", "{s.package}", {s.id}, {s.version}, '
      f'{len(s.messages)}, tp_{s.name}_messages }};')
    return w.text()


def ctype(f):
    return PRIMS[f.prim][1]


def getter_fn(prim):
    return f'tp_sbe_get_{PRIMS[prim][1][:-2].replace("uint", "u").replace("int", "i")}'


def putter_fn(prim):
    return f'tp_sbe_put_{PRIMS[prim][1][:-2].replace("uint", "u").replace("int", "i")}'


def gen_field_accessors(w, f, prefix, view_type, block_expr, enc_type, enc_body_expr, offset_macro):
    """Getter(s) on a decoded view and setter(s) on an encoder for one field."""
    fn = f'{prefix}_{snake(f.name)}'
    t = ctype(f)
    if f.presence == 'constant':
        w(f'static inline {t} {fn}(const {view_type} *m) {{ (void)m; return ({t}){f.constant}; }}')
        return
    if f.length > 1:
        esize = PRIMS[f.prim][2]
        w(f'static inline {t} {fn}(const {view_type} *m, uint16_t i)')
        w(f'{{ return i < {f.length} ? {getter_fn(f.prim)}({block_expr} + {offset_macro} + i * {esize}) : 0; }}')
        w(f'static inline void {prefix}_set_{snake(f.name)}({enc_type} *e, uint16_t i, {t} v)')
        w(f'{{ if (i < {f.length}) {{ {putter_fn(f.prim)}(tp_sbe_enc_at({enc_body_expr}, {offset_macro} + i * {esize}), v); }} }}')
        return
    w(f'static inline {t} {fn}(const {view_type} *m) {{ return {getter_fn(f.prim)}({block_expr} + {offset_macro}); }}')
    if f.presence == 'optional':
        w(f'static inline bool {prefix}_has_{snake(f.name)}(const {view_type} *m)')
        w(f'{{ return (uint64_t)({t}){fn}(m) != (uint64_t)({t}){c_literal_u64(f.null_bits)}; }}')
    w(f'static inline void {prefix}_set_{snake(f.name)}({enc_type} *e, {t} v)')
    w(f'{{ {putter_fn(f.prim)}(tp_sbe_enc_at({enc_body_expr}, {offset_macro}), v); }}')


def gen_body_api(w, s, body, prefix, macro_prefix, view_type, view_body_expr, body_meta_expr, enc_type, enc_body_expr):
    """Accessors for one body (message or group entry) and, recursively, its groups."""
    for f in body.fields:
        if f.presence != 'constant':
            w(f'#define {macro_prefix}_{snake(f.name).upper()}_OFFSET {f.offset}')
    for f in body.fields:
        gen_field_accessors(w, f, prefix, view_type, f'({view_body_expr}).block', enc_type, enc_body_expr,
                            f'{macro_prefix}_{snake(f.name).upper()}_OFFSET' if f.presence != 'constant' else '0')
    for i, g in enumerate(body.groups):
        gp = f'{prefix}_{snake(g.name)}'
        gm = f'{macro_prefix}_{snake(g.name).upper()}'
        w()
        w(f'/* group {g.name}: entry block {g.body.block_length} bytes */')
        w(f'typedef struct {gp} {{ tp_sbe_group_iter_t it; }} {gp}_t;')
        w(f'typedef struct {gp}_enc {{ tp_sbe_group_enc_t g; }} {gp}_enc_t;')
        w(f'#define {gm}_BLOCK_LENGTH {g.body.block_length}')
        w(f'/* Start iterating; returns the entry count. Entries are read through the group struct after _next. */')
        w(f'static inline uint16_t {gp}(const {view_type} *m, {gp}_t *g)')
        w(f'{{ return tp_sbe_group_iter_init(&g->it, &({view_body_expr}), {body_meta_expr}, {i}); }}')
        w(f'static inline bool {gp}_next({gp}_t *g) {{ return tp_sbe_group_iter_next(&g->it); }}')
        w(f'/* Start writing {g.name} with count entries; call {gp}_enc_next before each entry. */')
        w(f'static inline void {gp}_begin({enc_type} *e, {gp}_enc_t *g, uint16_t count)')
        w(f'{{ tp_sbe_enc_group_begin({enc_body_expr}, {i}, &g->g, count); }}')
        w(f'static inline void {gp}_enc_next({gp}_enc_t *g) {{ tp_sbe_enc_group_next(&g->g); }}')
        w(f'/* Close the group (optional; g must stay alive until it is closed or the next part is written). */')
        w(f'static inline void {gp}_end({gp}_enc_t *g) {{ tp_sbe_enc_group_end(&g->g); }}')
        gen_body_api(w, s, g.body, gp, gm, f'{gp}_t', 'm->it.entry', f'm->it.meta', f'{gp}_enc_t', '&e->g.entry')
    for i, v in enumerate(body.vars):
        vn = f'{prefix}_{snake(v.name)}'
        w(f'static inline tp_sbe_bytes_t {vn}(const {view_type} *m) {{ return ({view_body_expr}).vars[{i}]; }}')
        w(f'static inline void {prefix}_put_{snake(v.name)}({enc_type} *e, const void *data, size_t length)')
        w(f'{{ tp_sbe_enc_var({enc_body_expr}, {i}, data, length); }}')


def gen_header(s):
    w = Writer()
    guard = f'TP_SBE_{s.name.upper()}_H'
    w(f'/* Generated by tools/sbe_gen.py from {os.path.basename(s.path)}: schema {s.id} ({s.package}) version '
      f'{s.version}. Do not edit. */')
    w(f'#ifndef {guard}')
    w(f'#define {guard}')
    w()
    w('#include <stdbool.h>')
    w('#include <stddef.h>')
    w('#include <stdint.h>')
    w()
    w('#include "wire/tp_sbe.h"')
    w()
    up = s.name.upper()
    w(f'#define TP_{up}_SCHEMA_ID {s.id}')
    w(f'#define TP_{up}_SCHEMA_VERSION {s.version}')
    w(f'extern const tp_sbe_schema_meta_t tp_{s.name}_schema_meta;')
    for c in s.constants:
        w(f'#define TP_{up}_{snake(c.name).upper()} {c.constant} /* constant type {c.name} */')
    w()
    for e in s.enums:
        en = f'tp_{s.name}_{snake(e.name)}'
        eu = en.upper()
        w(f'/* enum {e.name} ({e.encoding}) */')
        w(f'typedef {PRIMS[e.encoding][1]} {en}_t;')
        w('enum')
        w('{')
        for n, v in e.values:
            w(f'    {eu}_{n} = {v},')
        w('};')
        w(f'extern const tp_sbe_enum_meta_t {en}_meta;')
        w(f'static inline bool {en}_is_valid(int64_t v)')
        w('{')
        w('    switch (v)')
        w('    {')
        for _, v in e.values:
            w(f'    case {v}:')
        w('        return true;')
        w('    default:')
        w('        return false;')
        w('    }')
        w('}')
        w(f'static inline const char *{en}_name(int64_t v) {{ return tp_sbe_enum_name(&{en}_meta, v); }}')
        w()
    for m in s.messages:
        mp = f'tp_{s.name}_{snake(m.name)}'
        mu = mp.upper()
        w(f'/* ---- {m.name} (template {m.id}{", no message header" if m.headerless else ""}) ---- */')
        w(f'#define {mu}_TEMPLATE_ID {m.id}')
        w(f'#define {mu}_BLOCK_LENGTH {m.body.block_length}')
        w(f'extern const tp_sbe_message_meta_t {mp}_meta;')
        w(f'typedef struct {mp} {{ tp_sbe_msg_view_t v; }} {mp}_t;')
        w(f'typedef struct {mp}_enc {{ tp_sbe_msg_enc_t e; }} {mp}_enc_t;')
        w(f'/* Decode and validate; -1 (TP_E_MALFORMED) with a message if the bytes are not a well-formed {m.name}. */')
        w(f'static inline int {mp}_decode({mp}_t *m, const void *buffer, size_t length)')
        w(f'{{ return tp_sbe_decode(&m->v, &{mp}_meta, buffer, length); }}')
        w(f'/* Begin encoding into buffer; finish returns the encoded length or -1. */')
        w(f'static inline void {mp}_enc_begin({mp}_enc_t *e, void *buffer, size_t capacity)')
        w(f'{{ tp_sbe_enc_begin(&e->e, &{mp}_meta, buffer, capacity); }}')
        w(f'static inline int64_t {mp}_enc_finish({mp}_enc_t *e) {{ return tp_sbe_enc_finish(&e->e); }}')
        gen_body_api(w, s, m.body, mp, mu, f'{mp}_t', 'm->v.body', f'&{mp}_meta.body', f'{mp}_enc_t', '&e->e.body')
        w()
    w('#endif')
    return w.text()


def gen_registry(schemas):
    w = Writer()
    w('/* Generated by tools/sbe_gen.py. Do not edit. */')
    w('#include "wire/tp_sbe.h"')
    for s in schemas:
        w(f'#include "tp_sbe_{s.name}.h"')
    w()
    w('const tp_sbe_schema_meta_t *const tp_sbe_schemas[] = {')
    for s in schemas:
        w(f'    &tp_{s.name}_schema_meta,')
    w('};')
    w(f'const size_t tp_sbe_schema_count = {len(schemas)};')
    return w.text()


def write_if_changed(path, text):
    if os.path.exists(path):
        with open(path, encoding='utf-8') as f:
            if f.read() == text:
                return
    with open(path, 'w', encoding='utf-8') as f:
        f.write(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', required=True, help='output directory')
    ap.add_argument('schemas', nargs='+', help='schema XML files')
    args = ap.parse_args()
    try:
        schemas = [Schema(p) for p in args.schemas]
    except (GenError, ET.ParseError, ValueError) as e:
        print(f'sbe_gen: {e}', file=sys.stderr)
        return 1
    names = [s.name for s in schemas]
    if len(names) != len(set(names)):
        print('sbe_gen: two schemas share a tpName', file=sys.stderr)
        return 1
    os.makedirs(args.out, exist_ok=True)
    for s in schemas:
        write_if_changed(os.path.join(args.out, f'tp_sbe_{s.name}.h'), gen_header(s))
        write_if_changed(os.path.join(args.out, f'tp_sbe_{s.name}.c'), gen_source(s))
    write_if_changed(os.path.join(args.out, 'tp_sbe_registry.c'), gen_registry(schemas))
    return 0


if __name__ == '__main__':
    sys.exit(main())
