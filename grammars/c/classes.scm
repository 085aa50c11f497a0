; Struct, union and enum definitions with a body, and typedefs of them: @definition.class.

(struct_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.class
(union_specifier name: (type_identifier) @name body: (field_declaration_list)) @definition.class
(enum_specifier name: (type_identifier) @name body: (enumerator_list)) @definition.class
(type_definition
  type: [(struct_specifier) (union_specifier) (enum_specifier)]
  declarator: (type_identifier) @name) @definition.class
