; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.

(function_definition
  declarator: (function_declarator declarator: (identifier) @name)) @scope.function
(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator declarator: (identifier) @name))) @scope.function
(function_definition) @scope.function
(struct_specifier name: (type_identifier) @name body: (field_declaration_list)) @scope.class
(union_specifier name: (type_identifier) @name body: (field_declaration_list)) @scope.class
(enum_specifier name: (type_identifier) @name body: (enumerator_list)) @scope.class

(compound_statement) @block
(field_declaration_list) @block
(enumerator_list) @block
(initializer_list) @block

(comment) @comment
(string_literal) @string
(char_literal) @string
(system_lib_string) @string
