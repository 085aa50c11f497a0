; Enclosing scopes, bodies a header opens, and regions where code rules do not apply.
; Captures: @scope.function, @scope.class (with optional @name), @block, @comment, @string.

(function_declaration name: (identifier) @name) @scope.function
(generator_function_declaration name: (identifier) @name) @scope.function
(function_expression name: (identifier) @name) @scope.function
(function_expression) @scope.function
(generator_function) @scope.function
(arrow_function) @scope.function
(method_definition name: (_) @name) @scope.function
(class_declaration name: (identifier) @name) @scope.class
(class) @scope.class

(statement_block) @block
(class_body) @block
(object) @block
(object_pattern) @block
(switch_body) @block

(comment) @comment
(string) @string
(template_string) @string
(regex) @string
