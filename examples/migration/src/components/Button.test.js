import { shallow } from 'enzyme';
import Button from './Button';

it('calls onClick', () => {
  const onClick = jest.fn();
  shallow(<Button onClick={onClick} />).simulate('click');
  expect(onClick).toHaveBeenCalled();
});
