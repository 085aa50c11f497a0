; Function and method definitions and declarations: @definition.function with its @name.

(function_definition
  declarator: (function_declarator
    declarator: [(identifier) (field_identifier) (destructor_name) (operator_name)] @name)) @definition.function
(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier name: [(identifier) (destructor_name) (operator_name)] @name))) @definition.function
(function_definition
  declarator: (function_declarator
    declarator: (qualified_identifier
      name: (qualified_identifier name: [(identifier) (destructor_name) (operator_name)] @name)))) @definition.function
(function_definition
  declarator: (pointer_declarator
    declarator: (function_declarator declarator: [(identifier) (field_identifier)] @name))) @definition.function
(function_definition
  declarator: (reference_declarator
    (function_declarator declarator: [(identifier) (field_identifier)] @name))) @definition.function
(declaration
  declarator: (function_declarator declarator: [(identifier) (field_identifier)] @name)) @definition.function
(field_declaration
  declarator: (function_declarator declarator: [(field_identifier) (identifier)] @name)) @definition.function
