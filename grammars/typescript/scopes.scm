; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.
; Shared by the typescript and tsx grammars.

(function_declaration name: (identifier) @name) @scope.function
(generator_function_declaration name: (identifier) @name) @scope.function
(function_expression name: (identifier) @name) @scope.function
(function_expression) @scope.function
(generator_function) @scope.function
(arrow_function) @scope.function
(method_definition name: (_) @name) @scope.function
(class_declaration name: (type_identifier) @name) @scope.class
(abstract_class_declaration name: (type_identifier) @name) @scope.class
(class) @scope.class
(interface_declaration name: (type_identifier) @name) @scope.class
(enum_declaration name: (identifier) @name) @scope.class

(statement_block) @block
(class_body) @block
(interface_body) @block
(enum_body) @block
(object) @block
(object_type) @block
(object_pattern) @block
(switch_body) @block

(comment) @comment
(string) @string
(template_string) @string
(regex) @string
