; Type declarations (structs, interfaces and other named types): @definition.class with its @name.

(type_declaration (type_spec name: (type_identifier) @name)) @definition.class
