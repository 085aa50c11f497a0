import React from "react";

export function App(): JSX.Element {
  return <div className="app">hello</div>;
}

const Button = (props: { label: string }) => <button>{props.label}</button>;

interface Props {
  title: string;
}

class Page extends React.Component<Props> {
  render() {
    return <h1>{this.props.title}</h1>;
  }
}
