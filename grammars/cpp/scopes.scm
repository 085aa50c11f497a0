; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.

(function_definition
  declarator: (function_declarator
    declarator: [(identifier) (field_identifier) (destructor_name) (operator_name)] @name)) @scope.function
(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier name: (_) @name))) @scope.function
(function_definition) @scope.function
(lambda_expression) @scope.function
(class_specifier name: (_) @name body: (field_declaration_list)) @scope.class
(struct_specifier name: (_) @name body: (field_declaration_list)) @scope.class
(union_specifier name: (_) @name body: (field_declaration_list)) @scope.class
(enum_specifier name: (_) @name body: (enumerator_list)) @scope.class

(compound_statement) @block
(field_declaration_list) @block
(declaration_list) @block
(enumerator_list) @block
(initializer_list) @block

(comment) @comment
(string_literal) @string
(raw_string_literal) @string
(char_literal) @string
(system_lib_string) @string
