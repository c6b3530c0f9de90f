/* TOML tree flags shared by the reader and the tree helpers: how each table or array came to be defined. */
#ifndef TP_CORE_TOML_INTERNAL_H
#define TP_CORE_TOML_INTERNAL_H

#define TP_TOML_F_HEADER 0x01   /* defined by a [table] header (or an [[array]] element, or the root) */
#define TP_TOML_F_IMPLICIT 0x02 /* created as an intermediate of a header path; a later header may define it */
#define TP_TOML_F_DOTTED 0x04   /* created by dotted keys */
#define TP_TOML_F_INLINE 0x08   /* inline table or value array: closed for good */
#define TP_TOML_F_STATIC 0x10   /* an array value ([...]), never extended by [[headers]] */
#define TP_TOML_F_AOT 0x20      /* an array of tables made by [[headers]] */

#endif
